// Decoding happens on the relay's thread, one token at a time, so the token
// that completes a stop string is known exactly; a delta is copied only when
// there is a tokenizer to add text. Matching searches the held-back text
// (at most the longest stop string's bytes) plus the new piece.
#include "coordinator/text_deltas.h"

#include <algorithm>

namespace tessera {
namespace {

// Keeps the first `count` tokens of a delta (their logits rows and logprobs).
void KeepTokens(TokenDelta& delta, size_t count) {
  if (delta.token_ids.size() <= count) return;
  delta.token_ids.resize(count);
  if (delta.logprobs.size() > count) delta.logprobs.resize(count);
  if (delta.logits && delta.logits->rows > static_cast<int32_t>(count)) {
    delta.logits->rows = static_cast<int32_t>(count);
    delta.logits->values.resize(count * static_cast<size_t>(delta.logits->vocab_size));
  }
}

}  // namespace

TextDeltaEvents::TextDeltaEvents(const Tokenizer* tokenizer, bool keep_special_tokens,
                                 const StoppingCriteria& stopping, GenerateEvents& inner)
    : inner_(inner), stop_strings_(stopping.stop_strings), min_tokens_(stopping.min_tokens) {
  if (tokenizer != nullptr) decoder_.emplace(tokenizer, /*skip_special_tokens=*/!keep_special_tokens);
}

bool TextDeltaEvents::Release(std::string& out, bool final) {
  size_t match = std::string::npos;
  for (const std::string& stop : stop_strings_) match = std::min(match, held_.find(stop));
  if (match != std::string::npos) {
    out.append(held_, 0, match);
    held_.clear();
    return true;
  }
  // The longest tail of held_ that is a proper prefix of a stop string.
  size_t keep = 0;
  if (!final) {
    for (const std::string& stop : stop_strings_) {
      for (size_t n = std::min(held_.size(), stop.size() - 1); n > keep; --n) {
        if (held_.compare(held_.size() - n, n, stop, 0, n) == 0) {
          keep = n;
          break;
        }
      }
    }
  }
  out.append(held_, 0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return false;
}

bool TextDeltaEvents::OnTokens(const TokenDelta& tokens) {
  if (!decoder_) return inner_.OnTokens(tokens);
  if (stopped_) return true;  // the request is ending: nothing more reaches the client
  TokenDelta with_text = tokens;
  for (size_t i = 0; i < tokens.token_ids.size(); ++i) {
    absl::StatusOr<std::string> piece = decoder_->Feed(tokens.token_ids[i]);
    if (piece.ok()) held_ += *piece;  // an unknown id adds nothing
    ++tokens_seen_;
    if (tokens_seen_ < min_tokens_ || stop_strings_.empty()) {
      with_text.text += held_;  // no stop string applies yet
      held_.clear();
      continue;
    }
    if (Release(with_text.text, /*final=*/false)) {
      stopped_ = true;
      KeepTokens(with_text, i + 1);
      break;
    }
  }
  text_ += with_text.text;
  return inner_.OnTokens(with_text);
}

bool TextDeltaEvents::Finish() {
  if (!decoder_) return true;
  TokenDelta tail;
  if (!stopped_) {
    held_ += decoder_->Finish();
    if (tokens_seen_ >= min_tokens_ && !stop_strings_.empty()) {
      stopped_ = Release(tail.text, /*final=*/true);
    } else {
      tail.text = std::move(held_);
    }
    held_.clear();
  }
  if (tail.text.empty()) return true;
  text_ += tail.text;
  return inner_.OnTokens(tail);
}

}  // namespace tessera
