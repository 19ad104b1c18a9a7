// Split-KV decode over gRPC: the decoding worker sends each new query to
// every other worker holding K/V of the request (Worker.AttendKv, in
// parallel) and merges the returned (out, lse) partials.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "services/peer_stubs.h"
#include "services/worker_metrics.h"
#include "worker/shard_context.h"

namespace tessera {

class GrpcRemoteKv : public RemoteKvAttention {
 public:
  GrpcRemoteKv(PeerStubs& stubs, std::string request_id, std::vector<std::string> holders,
               std::chrono::milliseconds timeout, WorkerMetrics* metrics = nullptr)
      : stubs_(stubs), request_id_(std::move(request_id)), holders_(std::move(holders)), timeout_(timeout),
        metrics_(metrics) {}

  absl::StatusOr<std::vector<AttentionPartial>> Attend(int64_t attention_slot, absl::Span<const float> q,
                                                       int64_t q_len, int64_t q_position0) override;

 private:
  PeerStubs& stubs_;
  std::string request_id_;
  std::vector<std::string> holders_;
  std::chrono::milliseconds timeout_;
  WorkerMetrics* metrics_;
};

}  // namespace tessera
