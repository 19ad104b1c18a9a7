// Blocks travel as raw little-endian float bytes in PeerBlock.data.
#include "services/grpc_peer_group.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "rpc/grpc_util.h"

namespace tessera {

absl::Status GrpcPeerGroup::Send(int to, uint64_t tag, absl::Span<const float> data) {
  if (to < 0 || to >= size()) return absl::InvalidArgumentError(absl::StrCat("no shard ", to, " of ", size()));
  tessera::v1::PeerBlock block;
  block.set_request_id(request_id_);
  block.set_tag(tag);
  block.set_from_rank(rank_);
  block.set_data(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout_);
  tessera::v1::DeliverAck ack;
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = stubs_.For(addresses_[to]).Deliver(&context, block, &ack);
  if (metrics_ != nullptr) {
    metrics_->peer_send_seconds.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    metrics_->peer_send_bytes.Increment(static_cast<double>(block.data().size()));
  }
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("request ", request_id_, ": sending to shard ", to, " at ",
                                               addresses_[to], " failed: ", status.error_message()));
  }
  bytes_sent_ += static_cast<int64_t>(data.size() * sizeof(float));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> GrpcPeerGroup::Recv(int from, uint64_t tag) {
  if (from < 0 || from >= size()) return absl::InvalidArgumentError(absl::StrCat("no shard ", from, " of ", size()));
  return mailbox_.Take(request_id_, tag, from, timeout_);
}

}  // namespace tessera
