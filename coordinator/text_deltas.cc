// Decoding happens on the relay's thread, one token at a time; a delta is
// copied only when there is a tokenizer to add text.
#include "coordinator/text_deltas.h"

namespace tessera {

TextDeltaEvents::TextDeltaEvents(const Tokenizer* tokenizer, bool keep_special_tokens, GenerateEvents& inner)
    : inner_(inner) {
  if (tokenizer != nullptr) decoder_.emplace(tokenizer, /*skip_special_tokens=*/!keep_special_tokens);
}

bool TextDeltaEvents::OnTokens(const TokenDelta& tokens) {
  if (!decoder_) return inner_.OnTokens(tokens);
  TokenDelta with_text = tokens;
  for (int32_t id : tokens.token_ids) {
    absl::StatusOr<std::string> piece = decoder_->Feed(id);
    if (piece.ok()) with_text.text += *piece;  // an unknown id adds nothing
  }
  text_ += with_text.text;
  return inner_.OnTokens(with_text);
}

bool TextDeltaEvents::Finish() {
  if (!decoder_) return true;
  TokenDelta tail;
  tail.text = decoder_->Finish();
  if (tail.text.empty()) return true;
  text_ += tail.text;
  return inner_.OnTokens(tail);
}

}  // namespace tessera
