// StreamingDecoder: hold back an incomplete trailing UTF-8 sequence.
#include "coordinator/tokenizer/streaming_decoder.h"

#include "coordinator/tokenizer/utf8.h"

namespace tessera {

StreamingDecoder::StreamingDecoder(const Tokenizer* tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

absl::StatusOr<std::string> StreamingDecoder::Feed(int32_t id) {
  if (absl::Status s = tokenizer_->AppendTokenBytes(id, skip_special_tokens_, &pending_); !s.ok()) return s;
  const size_t stable = Utf8StablePrefixLength(pending_);
  std::string delta;
  Utf8AppendLossy(std::string_view(pending_).substr(0, stable), &delta);
  pending_.erase(0, stable);
  return delta;
}

std::string StreamingDecoder::Finish() {
  std::string rest;
  Utf8AppendLossy(pending_, &rest);
  pending_.clear();
  return rest;
}

}  // namespace tessera
