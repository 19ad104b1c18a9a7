// PeerTransport for shards that run as threads of one process: every rank's
// posts land in one shared Mailbox, and split-KV queries are answered by a
// function the caller gives (the other shards' engine, as a worker's AttendKv
// RPC would). Used by the context-parallel tests of every backend.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "transport/mailbox.h"
#include "transport/mailbox_transport.h"

namespace tessera {

// Attention of a query over the K/V that rank `holder` keeps (AttendKv in process).
using InProcessKvAnswer = std::function<absl::StatusOr<AttentionPartial>(
    int holder, int64_t attention_slot, absl::Span<const float> q, int64_t q_len, int64_t q_position0)>;

class InProcessTransport final : public MailboxTransport {
 public:
  // `answer` may be empty when no rank decodes with split-KV attention.
  InProcessTransport(std::shared_ptr<Mailbox> mailbox, std::string request_id, int rank, int size,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30), InProcessKvAnswer answer = {})
      : mailbox_(std::move(mailbox)), request_id_(std::move(request_id)), rank_(rank), size_(size),
        timeout_(timeout), answer_(std::move(answer)) {
    mailbox_->Open(Inbox(rank_), /*secret=*/"");  // this rank's blocks wait for it, however long it computes
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  absl::StatusOr<std::vector<AttentionPartial>> QueryKv(int64_t attention_slot, absl::Span<const float> q,
                                                        int64_t q_len, int64_t q_position0) override;

 protected:
  absl::Status Post(int to, uint64_t tag, std::string block) override;
  absl::StatusOr<std::string> Take(int from, uint64_t tag) override;

 private:
  // Blocks are keyed by receiver too, since all ranks share one mailbox.
  std::string Inbox(int rank) const { return request_id_ + "#" + std::to_string(rank); }

  std::shared_ptr<Mailbox> mailbox_;
  std::string request_id_;
  int rank_;
  int size_;
  std::chrono::milliseconds timeout_;
  InProcessKvAnswer answer_;
};

}  // namespace tessera
