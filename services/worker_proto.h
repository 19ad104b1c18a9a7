// Conversions between tessera.v1's worker messages and the worker's
// proto-free API (worker/shard_request.h): a RunShardRequest as a
// ShardRequest, and ShardEvents written as RunShardEvent messages on a stream.
#pragma once

#include <cstdint>

#include "grpcpp/grpcpp.h"
#include "grpcpp/support/sync_stream.h"
#include "tessera/v1/worker.pb.h"
#include "worker/shard_request.h"

namespace tessera {

ShardRequest FromProto(const tessera::v1::RunShardRequest& r);

// ShardEvents as RunShardEvent messages on the call's stream; a failed write
// (the coordinator went away) is CANCELLED, which stops the shard.
class StreamEvents final : public ShardEvents {
 public:
  StreamEvents(grpc::ServerWriter<tessera::v1::RunShardEvent>* writer, int64_t vocab) : writer_(writer), vocab_(vocab) {}

  absl::Status Progress(int64_t layers_done, int64_t layers_total, int64_t prompt_tokens, int shards) override;
  absl::Status PromptLogits(absl::Span<const float> logits, int64_t vocab) override;
  absl::Status Prefilled(int64_t memory_bytes, int64_t cached_prompt_tokens) override;
  absl::Status Token(int32_t token, absl::Span<const float> logits) override;
  absl::Status TokenWithLogprobs(const SampledToken& sampled, absl::Span<const float> logits) override;
  absl::Status Finished(FinishReason reason, int32_t completion_tokens) override;

 private:
  absl::Status Write(const tessera::v1::RunShardEvent& event);

  grpc::ServerWriter<tessera::v1::RunShardEvent>* writer_;
  int64_t vocab_;
};

}  // namespace tessera
