// PeerGroup for shards that live in one process (threads): every rank's
// sends land in one shared mailbox. Used by tests of the context-parallel math
// and by a single worker running several shards.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "worker/peer_group.h"
#include "worker/peer_mailbox.h"

namespace tessera {

class LocalPeerGroup : public PeerGroup {
 public:
  LocalPeerGroup(std::shared_ptr<PeerMailbox> mailbox, std::string request_id, int rank, int size,
                 std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : mailbox_(std::move(mailbox)), request_id_(std::move(request_id)), rank_(rank), size_(size),
        timeout_(timeout) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  absl::Status Send(int to, uint64_t tag, absl::Span<const float> data) override;
  absl::StatusOr<std::vector<float>> Recv(int from, uint64_t tag) override;

 private:
  // Blocks are keyed by receiver too, since all ranks share one mailbox.
  std::string Inbox(int rank) const { return request_id_ + "#" + std::to_string(rank); }

  std::shared_ptr<PeerMailbox> mailbox_;
  std::string request_id_;
  int rank_;
  int size_;
  std::chrono::milliseconds timeout_;
};

}  // namespace tessera
