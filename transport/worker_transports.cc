// NCCL is compiled in only where CUDA and NCCL are found (TESSERA_HAVE_NCCL);
// elsewhere a request naming an NCCL group is refused by name.
#include "transport/worker_transports.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/grpc_transport.h"

#ifdef TESSERA_HAVE_NCCL
#include "transport/nccl_groups.h"
#include "transport/nccl_transport.h"
#endif

namespace tessera {

std::unique_ptr<PeerTransport> WorkerTransports::Grpc(const RequestPeers& peers) {
  return std::make_unique<GrpcTransport>(stubs_, mailbox_, peers.request_id, peers.secret, peers.rank,
                                         peers.addresses, peers.timeout, metrics_);
}

absl::StatusOr<std::unique_ptr<PeerTransport>> WorkerTransports::ForPrefill(const RequestPeers& peers) {
  if (peers.nccl_group_id.empty()) return Grpc(peers);
#ifdef TESSERA_HAVE_NCCL
  if (nccl_groups_ != nullptr) {
    ASSIGN_OR_RETURN(std::shared_ptr<NcclCommunicator> comm,
                     nccl_groups_->GetOrJoin(peers.nccl_group_id, peers.nccl_unique_id,
                                             static_cast<int>(peers.addresses.size()), peers.rank, peers.timeout,
                                             peers.cancelled));
    return std::make_unique<NcclTransport>(std::move(comm), peers.timeout, peers.cancelled, Grpc(peers), metrics_);
  }
#endif
  return absl::FailedPreconditionError(absl::StrCat("request ", peers.request_id, " names NCCL group ",
                                                    peers.nccl_group_id, " but this worker does not offer NCCL"));
}

absl::StatusOr<std::unique_ptr<PeerTransport>> WorkerTransports::ForDecode(const RequestPeers& peers) {
  return Grpc(peers);
}

std::vector<std::string> WorkerTransports::Offered() const {
  std::vector<std::string> offered = {"grpc"};
  if (nccl_groups_ != nullptr) offered.push_back("nccl");
  return offered;
}

absl::StatusOr<std::string> WorkerTransports::NewNcclUniqueId(const std::string& group_id) const {
#ifdef TESSERA_HAVE_NCCL
  if (nccl_groups_ != nullptr) return tessera::NewNcclUniqueId();
#endif
  return absl::FailedPreconditionError(
      absl::StrCat("this worker does not offer the NCCL transport (group ", group_id, ")"));
}

}  // namespace tessera
