// The RequestTransports of a worker process: gRPC to every peer (blocks into
// the receiving worker's Mailbox through Worker.Deliver, split-KV queries
// through Worker.AttendKv), and NCCL between GPU workers when this build has
// it and the worker was given its NCCL groups. The worker's gRPC service hands
// incoming blocks to Deliver and unique-id requests to NewNcclUniqueId.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "transport/mailbox.h"
#include "transport/peer_metrics.h"
#include "transport/peer_stubs.h"
#include "transport/request_transports.h"

namespace tessera {

class NcclGroups;  // transport/nccl_groups.h, in builds with NCCL

class WorkerTransports final : public RequestTransports {
 public:
  // `nccl_groups` null: NCCL is not offered. Both pointers, when given, must
  // outlive this object.
  WorkerTransports(NcclGroups* nccl_groups, PeerMetrics* metrics)
      : nccl_groups_(nccl_groups), metrics_(metrics) {}

  absl::StatusOr<std::unique_ptr<PeerTransport>> ForPrefill(const RequestPeers& peers) override;
  absl::StatusOr<std::unique_ptr<PeerTransport>> ForDecode(const RequestPeers& peers) override;
  void EndRequest(const std::string& request_id) override { mailbox_.Cancel(request_id); }
  std::vector<std::string> Offered() const override;

  // A block a peer sent to this worker (Worker.Deliver).
  void Deliver(const std::string& request_id, uint64_t tag, int from_rank, std::string data) {
    mailbox_.Put(request_id, tag, from_rank, std::move(data));
  }
  // A fresh NCCL unique id for a group whose rank 0 this worker is;
  // FAILED_PRECONDITION where NCCL is not offered.
  absl::StatusOr<std::string> NewNcclUniqueId(const std::string& group_id) const;

 private:
  std::unique_ptr<PeerTransport> Grpc(const RequestPeers& peers);

  NcclGroups* nccl_groups_;
  PeerMetrics* metrics_;
  Mailbox mailbox_;
  PeerStubs stubs_;
};

}  // namespace tessera
