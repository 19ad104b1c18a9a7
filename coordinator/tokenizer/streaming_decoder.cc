// StreamingDecoder: ids -> token strings -> the decoder chain's stream.
#include "coordinator/tokenizer/streaming_decoder.h"

#include <optional>
#include <string_view>

namespace tessera {

StreamingDecoder::StreamingDecoder(const Tokenizer* tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens), stream_(&tokenizer->decoder()) {}

absl::StatusOr<std::string> StreamingDecoder::Feed(int32_t id) {
  absl::StatusOr<std::optional<std::string_view>> token = tokenizer_->DecoderInput(id, skip_special_tokens_);
  if (!token.ok()) return token.status();
  std::string delta;
  if (token->has_value()) stream_.Push(**token, &delta);
  return delta;
}

std::string StreamingDecoder::Finish() {
  std::string rest;
  stream_.Finish(&rest);
  return rest;
}

}  // namespace tessera
