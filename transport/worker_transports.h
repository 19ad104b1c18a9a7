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
  // `limits` bound what peers may send (see mailbox.h).
  WorkerTransports(NcclGroups* nccl_groups, PeerMetrics* metrics, MailboxLimits limits = {})
      : nccl_groups_(nccl_groups), metrics_(metrics), mailbox_(limits) {}

  absl::StatusOr<std::unique_ptr<PeerTransport>> ForPrefill(const RequestPeers& peers) override;
  absl::StatusOr<std::unique_ptr<PeerTransport>> ForDecode(const RequestPeers& peers) override;
  void BeginRequest(const std::string& request_id, const std::string& secret) override {
    mailbox_.Open(request_id, secret);
  }
  void EndRequest(const std::string& request_id, const std::string& secret) override {
    mailbox_.Close(request_id, secret);
  }
  int64_t PendingBytes() override { return mailbox_.PendingBytes(); }
  std::vector<std::string> Offered() const override;

  // A block a peer sent to this worker (Worker.Deliver): filed under the
  // request's id and secret, within the mailbox's bounds (mailbox.h).
  absl::Status Deliver(const std::string& request_id, const std::string& secret, uint64_t tag, int from_rank,
                       std::string data) {
    return mailbox_.Put(request_id, secret, tag, from_rank, std::move(data));
  }
  const MailboxLimits& limits() const { return mailbox_.limits(); }
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
