// Text for the token deltas on their way to the client. Each delta gets the
// text its tokens complete (StreamingDecoder: never part of a UTF-8
// character; bytes of an incomplete one wait for a later delta). When
// generation ends, Finish sends what is still held back as one last delta
// with text and no tokens. The deltas' texts, concatenated, are text().
//
// Stop strings (from min_tokens tokens on, as vLLM checks them) are matched
// on that text, so a match may span tokens and characters split over tokens:
// the text is cut before the earliest match, the tokens after the one that
// completed it are dropped, and stopped() turns true (the relay then ends
// the request). Until then a delta holds back only the longest tail of the
// text that could still begin a stop string.
//
// Ids the tokenizer does not know (a model's vocabulary is often padded past
// the tokenizer's) contribute no text, as in Hugging Face's decode.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "coordinator/generate_events.h"
#include "coordinator/generate_types.h"
#include "coordinator/tokenizer/streaming_decoder.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace tessera {

class TextDeltaEvents final : public GenerateEvents {
 public:
  // `tokenizer` may be null: deltas pass unchanged and text() stays empty
  // (requests with stop strings need a tokenizer: request_validation.h).
  TextDeltaEvents(const Tokenizer* tokenizer, bool keep_special_tokens, const StoppingCriteria& stopping,
                  GenerateEvents& inner);

  void OnStart(const std::string& request_id) override { inner_.OnStart(request_id); }
  bool OnProgress(const PrefillProgress& progress) override { return inner_.OnProgress(progress); }
  bool OnTokens(const TokenDelta& tokens) override;

  // After the last token: relays the held-back tail, if any. False when the
  // client is gone.
  bool Finish();

  // The text relayed so far; after Finish, the completion's whole text.
  const std::string& text() const { return text_; }
  // A stop string matched: nothing more is relayed.
  bool stopped() const { return stopped_; }

 private:
  // Moves what of `held_` can no longer begin a stop string (all of it after
  // a match, cut before the match) to `out`; returns true on a match.
  bool Release(std::string& out, bool final);

  GenerateEvents& inner_;
  std::optional<StreamingDecoder> decoder_;  // empty without a tokenizer
  const std::vector<std::string> stop_strings_;
  const int32_t min_tokens_;
  int32_t tokens_seen_ = 0;
  std::string held_;  // decoded text not relayed yet: it may begin a stop string
  bool stopped_ = false;
  std::string text_;
};

}  // namespace tessera
