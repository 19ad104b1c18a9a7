// PeerTransport between GPU workers over NCCL, for one request's prefill:
// AllGather and RingShift go straight through the group's communicator on the
// caller's stream, on device memory (BufferSpace::kDevice). Split-KV queries
// are latency-bound, one per decode step, and go through `queries` (the gRPC
// transport of the same request), as decode does on every backend.
//
// Failures: UNAVAILABLE when a collective does not complete within `timeout`
// (the communicator is aborted: see nccl_communicator.h), CANCELLED when
// *cancelled is set meanwhile. Tags are not needed: NCCL matches collectives
// by their order, which the forward pass keeps the same on every rank.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include "transport/nccl_communicator.h"
#include "transport/peer_metrics.h"
#include "transport/peer_transport.h"

namespace tessera {

class NcclTransport final : public PeerTransport {
 public:
  // `comm` must not be null (it may be shared with other requests of the same
  // worker group, one at a time); `queries` may be null when nobody decodes
  // with split-KV attention over this transport; `metrics` may be null.
  NcclTransport(std::shared_ptr<NcclCommunicator> comm, std::chrono::milliseconds timeout,
                const std::atomic<bool>* cancelled, std::unique_ptr<PeerTransport> queries,
                PeerMetrics* metrics = nullptr);

  int rank() const override { return comm_->rank(); }
  int size() const override { return comm_->size(); }
  BufferSpace space() const override { return BufferSpace::kDevice; }
  absl::Status AllGather(uint64_t tag, const void* mine, size_t bytes, void* all, CudaStream stream) override;
  absl::Status RingShift(uint64_t tag, const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                         CudaStream stream) override;
  absl::StatusOr<std::vector<AttentionPartial>> QueryKv(int64_t attention_slot, absl::Span<const float> q,
                                                        int64_t q_len, int64_t q_position0) override;

 private:
  std::shared_ptr<NcclCommunicator> comm_;
  std::chrono::milliseconds timeout_;
  const std::atomic<bool>* cancelled_;
  std::unique_ptr<PeerTransport> queries_;
  PeerMetrics* metrics_;
};

}  // namespace tessera
