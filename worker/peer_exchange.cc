// Staging copies are whole packed tensors: every exchange here moves one
// contiguous block per rank.
#include "worker/peer_exchange.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tessera {
namespace {

absl::Status CheckPacked(const Tensor& t, const char* what) {
  if (t.packed()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("peer exchange: ", what, " must be packed"));
}

}  // namespace

absl::Status PeerExchange::CheckSpaces() const {
  if (space_ == BufferSpace::kHost && peers_.space() == BufferSpace::kDevice) {
    return absl::FailedPreconditionError("a device-memory transport (NCCL) cannot move a CPU backend's buffers");
  }
  return absl::OkStatus();
}

absl::Status PeerExchange::AllGather(uint64_t tag, const Tensor& mine, const Tensor& all) {
  RETURN_IF_ERROR(CheckSpaces());
  RETURN_IF_ERROR(CheckPacked(mine, "an all-gather contribution"));
  RETURN_IF_ERROR(CheckPacked(all, "an all-gather result"));
  const size_t bytes = static_cast<size_t>(mine.span_bytes());
  if (all.span_bytes() != static_cast<int64_t>(bytes) * size()) {
    return absl::InternalError(absl::StrCat("peer exchange: all-gather result has ", all.span_bytes(),
                                            " bytes for ", size(), " contributions of ", bytes));
  }
  if (peers_.space() == space_) return peers_.AllGather(tag, mine.data, bytes, all.data, ops_.cuda_stream());
  std::vector<char> host_mine(bytes);  // device -> host -> peers -> host -> device
  std::vector<char> host_all(bytes * size());
  RETURN_IF_ERROR(ops_.Download(mine, host_mine.data()));
  RETURN_IF_ERROR(peers_.AllGather(tag, host_mine.data(), bytes, host_all.data(), nullptr));
  RETURN_IF_ERROR(ops_.Upload(host_all.data(), all));
  return ops_.Finish();  // the host vectors go out of scope here
}

absl::Status PeerExchange::RingShift(uint64_t tag, const Tensor& send, const Tensor& recv) {
  return RingShiftOn(ops_, tag, send, recv);
}

absl::Status PeerExchange::RingShiftOn(OpStream& ops, uint64_t tag, const Tensor& send, const Tensor& recv) {
  RETURN_IF_ERROR(CheckSpaces());
  RETURN_IF_ERROR(CheckPacked(send, "a ring block sent"));
  RETURN_IF_ERROR(CheckPacked(recv, "a ring block received"));
  const size_t send_bytes = static_cast<size_t>(send.span_bytes());
  const size_t recv_bytes = static_cast<size_t>(recv.span_bytes());
  if (peers_.space() == space_) {
    return peers_.RingShift(tag, send.data, send_bytes, recv.data, recv_bytes, ops.cuda_stream());
  }
  std::vector<char> host_send(send_bytes);
  std::vector<char> host_recv(recv_bytes);
  RETURN_IF_ERROR(ops.Download(send, host_send.data()));
  RETURN_IF_ERROR(peers_.RingShift(tag, host_send.data(), send_bytes, host_recv.data(), recv_bytes, nullptr));
  RETURN_IF_ERROR(ops.Upload(host_recv.data(), recv));
  return ops.Finish();
}

absl::Status PeerExchange::StartRingShift(uint64_t tag, const Tensor& send, const Tensor& recv,
                                          RingShiftInFlight& shift) {
  if (shift.thread_.joinable() || shift.side_ != nullptr) {
    return absl::InternalError("peer exchange: a ring shift is already in flight");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<OpStream> stream, backend_.NewStream());
  RETURN_IF_ERROR(ops_.Precede(*stream));
  shift.side_ = std::move(stream);
  OpStream* side = shift.side_.get();
  shift.status_ = absl::OkStatus();
  shift.thread_ = std::thread([this, side, tag, send, recv, &shift] {
    shift.status_ = RingShiftOn(*side, tag, send, recv);
  });
  return absl::OkStatus();
}

absl::Status PeerExchange::FinishRingShift(RingShiftInFlight& shift) {
  if (shift.side_ == nullptr) return absl::InternalError("peer exchange: no ring shift in flight");
  shift.Join();
  absl::Status status = shift.status_;
  if (status.ok()) status = shift.side_->Precede(ops_);
  shift.side_.reset();  // back to the backend's pool (idle: the transfer returned after its stream drained)
  return status;
}

}  // namespace tessera
