// PeerGroup between CPU workers over gRPC: a Send is a unary Worker.Deliver
// to the receiving worker, which files the block in its PeerMailbox; a Recv
// waits on this worker's own mailbox. A dead peer fails Send at once and
// Recv at the peer timeout or when the request is cancelled (UNAVAILABLE).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "services/peer_stubs.h"
#include "services/worker_metrics.h"
#include "worker/peer_group.h"
#include "worker/peer_mailbox.h"

namespace tessera {

class GrpcPeerGroup : public PeerGroup {
 public:
  GrpcPeerGroup(PeerStubs& stubs, PeerMailbox& mailbox, std::string request_id, int rank,
                std::vector<std::string> peer_addresses, std::chrono::milliseconds timeout,
                WorkerMetrics* metrics = nullptr)
      : stubs_(stubs), mailbox_(mailbox), request_id_(std::move(request_id)), rank_(rank),
        addresses_(std::move(peer_addresses)), timeout_(timeout), metrics_(metrics) {}

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(addresses_.size()); }
  absl::Status Send(int to, uint64_t tag, absl::Span<const float> data) override;
  absl::StatusOr<std::vector<float>> Recv(int from, uint64_t tag) override;

  int64_t bytes_sent() const { return bytes_sent_; }

 private:
  PeerStubs& stubs_;
  PeerMailbox& mailbox_;
  std::string request_id_;
  int rank_;
  std::vector<std::string> addresses_;
  std::chrono::milliseconds timeout_;
  WorkerMetrics* metrics_;
  int64_t bytes_sent_ = 0;
};

}  // namespace tessera
