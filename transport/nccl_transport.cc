// Bytes this rank hands to NCCL for other ranks are counted as sent: an
// all-gather sends its contribution to every other rank, a ring shift its block.
#include "transport/nccl_transport.h"

#include <cassert>

#include "common/status_macros.h"

namespace tessera {

NcclTransport::NcclTransport(std::shared_ptr<NcclCommunicator> comm, std::chrono::milliseconds timeout,
                             const std::atomic<bool>* cancelled, std::unique_ptr<PeerTransport> queries,
                             PeerMetrics* metrics)
    : comm_(std::move(comm)), timeout_(timeout), cancelled_(cancelled), queries_(std::move(queries)),
      metrics_(metrics) {
  assert(comm_ != nullptr);
}

absl::Status NcclTransport::AllGather(uint64_t, const void* mine, size_t bytes, void* all, CudaStream stream) {
  RETURN_IF_ERROR(comm_->AllGather(mine, bytes, all, stream, timeout_, cancelled_));
  if (metrics_ != nullptr) metrics_->nccl_bytes.Increment(static_cast<double>(bytes) * (size() - 1));
  return absl::OkStatus();
}

absl::Status NcclTransport::RingShift(uint64_t, const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                                      CudaStream stream) {
  RETURN_IF_ERROR(comm_->RingShift(send, send_bytes, recv, recv_bytes, stream, timeout_, cancelled_));
  if (metrics_ != nullptr && size() > 1) metrics_->nccl_bytes.Increment(static_cast<double>(send_bytes));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AttentionPartial>> NcclTransport::QueryKv(int64_t attention_slot, absl::Span<const float> q,
                                                                    int64_t q_len, int64_t q_position0) {
  if (queries_ == nullptr) return absl::FailedPreconditionError("this NCCL group was made without a query transport");
  return queries_->QueryKv(attention_slot, q, q_len, q_position0);
}

}  // namespace tessera
