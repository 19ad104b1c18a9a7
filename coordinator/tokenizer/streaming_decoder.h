// Incremental detokenization for generation: feed ids one at a time, get
// back only text that can no longer change. A token may end in the middle of
// a UTF-8 character (an emoji is often 2-4 byte-level or <0xAB> tokens);
// those bytes wait until the character completes, so a delta is always
// valid UTF-8 and never ends in a partial character. Concatenating every
// delta and Finish() gives exactly Tokenizer::Decode of the same ids: both
// run the tokenizer's decoder chain as a stream (decoder.h says what each
// step holds back; a byte-fallback run waits for the token that ends it).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer/decoder.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace tessera {

class StreamingDecoder {
 public:
  // `tokenizer` must outlive the decoder.
  StreamingDecoder(const Tokenizer* tokenizer, bool skip_special_tokens);

  // The text completed by `id` (often empty while a character is incomplete).
  // INVALID_ARGUMENT for an id outside the vocabulary; the state is unchanged.
  absl::StatusOr<std::string> Feed(int32_t id);

  // Flushes what is left (an incomplete trailing character becomes U+FFFD).
  // The decoder can then be reused for a new stream.
  std::string Finish();

  // Bytes held back for later tokens (at most 3 with a ByteLevel decoder).
  size_t pending_bytes() const { return stream_.pending_bytes(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  DecoderStream stream_;
};

}  // namespace tessera
