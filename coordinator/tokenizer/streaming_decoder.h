// Incremental detokenization for generation: feed ids one at a time, get
// back only text that can no longer change. A byte-level token may end in the
// middle of a UTF-8 character (an emoji is often 2-4 tokens); those bytes wait
// until the character completes, so a delta is always valid UTF-8 and never
// ends in a partial character. Concatenating every delta and Finish() gives
// exactly Tokenizer::Decode of the same ids (utf8.h says why).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace tessera {

class StreamingDecoder {
 public:
  // `tokenizer` must outlive the decoder.
  StreamingDecoder(const Tokenizer* tokenizer, bool skip_special_tokens);

  // The text completed by `id` (often empty while a character is incomplete).
  // INVALID_ARGUMENT for an id outside the vocabulary; the state is unchanged.
  absl::StatusOr<std::string> Feed(int32_t id);

  // Flushes what is left: an incomplete trailing character becomes U+FFFD.
  // The decoder can then be reused for a new stream.
  std::string Finish();

  // Bytes held back, waiting for the rest of a character (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;  // undecoded tail: an incomplete UTF-8 sequence
};

}  // namespace tessera
