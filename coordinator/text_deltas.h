// Text for the token deltas on their way to the client. Each delta gets the
// text its tokens complete (StreamingDecoder: never part of a UTF-8
// character; bytes of an incomplete one wait for a later delta). When
// generation ends, Finish sends what is still held back as one last delta
// with text and no tokens. The deltas' texts, concatenated, are text().
//
// Ids the tokenizer does not know (a model's vocabulary is often padded past
// the tokenizer's) contribute no text, as in Hugging Face's decode.
#pragma once

#include <optional>
#include <string>

#include "coordinator/generate_events.h"
#include "coordinator/tokenizer/streaming_decoder.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace tessera {

class TextDeltaEvents final : public GenerateEvents {
 public:
  // `tokenizer` may be null: deltas pass unchanged and text() stays empty.
  TextDeltaEvents(const Tokenizer* tokenizer, bool keep_special_tokens, GenerateEvents& inner);

  void OnStart(const std::string& request_id) override { inner_.OnStart(request_id); }
  bool OnProgress(const PrefillProgress& progress) override { return inner_.OnProgress(progress); }
  bool OnTokens(const TokenDelta& tokens) override;

  // After the last token: relays the held-back tail, if any. False when the
  // client is gone.
  bool Finish();

  // The text relayed so far; after Finish, the completion's whole text.
  const std::string& text() const { return text_; }

 private:
  GenerateEvents& inner_;
  std::optional<StreamingDecoder> decoder_;  // empty without a tokenizer
  std::string text_;
};

}  // namespace tessera
