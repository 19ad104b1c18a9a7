// A mutex, a condition variable and a map of inboxes: blocks wait here for
// their reader. Every bound is checked before a block is kept, so the
// counters never pass the limits.
#include "transport/mailbox.h"

#include "absl/strings/str_cat.h"

namespace tessera {

void Mailbox::Open(const std::string& request_id, const std::string& secret) {
  std::lock_guard<std::mutex> lock(mu_);
  const RequestKey key(request_id, secret);
  if (ClosedLocked(key)) return;
  Inbox& inbox = inboxes_[key];
  if (!inbox.claimed) {
    inbox.claimed = true;
    unclaimed_bytes_ -= inbox.bytes;
  }
}

absl::Status Mailbox::Put(const std::string& request_id, const std::string& secret, uint64_t tag, int from,
                          std::string data) {
  const int64_t size = static_cast<int64_t>(data.size());
  if (size > limits_.max_block_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("a peer block must be <= ", limits_.max_block_bytes,
                                                   " bytes (the model's largest exchange). Given: ", size));
  }
  const int64_t charge = size + kMailboxBlockOverheadBytes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    DropExpiredLocked(now);
    const RequestKey key(request_id, secret);
    if (ClosedLocked(key)) return absl::OkStatus();  // a late block of an ended request
    auto it = inboxes_.find(key);
    const bool claimed = it != inboxes_.end() && it->second.claimed;
    const int64_t request_bytes = it == inboxes_.end() ? 0 : it->second.bytes;
    int64_t replaced = 0;  // a resent block replaces the earlier copy
    if (it != inboxes_.end()) {
      auto old = it->second.blocks.find({tag, from});
      if (old != it->second.blocks.end()) {
        replaced = static_cast<int64_t>(old->second.size()) + kMailboxBlockOverheadBytes;
      }
    }
    if (request_bytes - replaced + charge > limits_.max_request_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("request ", request_id, " has ", request_bytes,
                                                       " undelivered bytes here; at most ", limits_.max_request_bytes));
    }
    if (!claimed && unclaimed_bytes_ - replaced + charge > limits_.max_unclaimed_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("blocks for requests not running here hold ", unclaimed_bytes_,
                                                       " bytes; at most ", limits_.max_unclaimed_bytes));
    }
    if (total_bytes_ - replaced + charge > limits_.max_total_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("undelivered peer blocks hold ", total_bytes_,
                                                       " bytes; at most ", limits_.max_total_bytes));
    }
    if (it == inboxes_.end()) {
      it = inboxes_.emplace(key, Inbox()).first;
      it->second.created = now;
      unclaimed_order_.emplace_back(now, key);
    }
    Inbox& inbox = it->second;
    std::string& slot = inbox.blocks[{tag, from}];
    if (replaced == 0) ++total_blocks_;
    const int64_t delta = charge - replaced;
    slot = std::move(data);
    inbox.bytes += delta;
    total_bytes_ += delta;
    if (!inbox.claimed) unclaimed_bytes_ += delta;
  }
  arrived_.notify_all();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Mailbox::Take(const std::string& request_id, const std::string& secret, uint64_t tag,
                                          int from, std::chrono::milliseconds timeout) {
  const RequestKey key(request_id, secret);
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (ClosedLocked(key)) {
      return absl::CancelledError(absl::StrCat("request ", request_id, " was cancelled"));
    }
    Inbox& inbox = inboxes_[key];  // claims it
    if (!inbox.claimed) {
      inbox.claimed = true;
      unclaimed_bytes_ -= inbox.bytes;
    }
    auto it = inbox.blocks.find({tag, from});
    if (it != inbox.blocks.end()) {
      std::string data = std::move(it->second);
      const int64_t charge = static_cast<int64_t>(data.size()) + kMailboxBlockOverheadBytes;
      inbox.blocks.erase(it);
      inbox.bytes -= charge;
      total_bytes_ -= charge;
      --total_blocks_;
      return data;
    }
    if (arrived_.wait_until(lock, deadline) == std::cv_status::timeout && Clock::now() >= deadline) {
      return absl::UnavailableError(absl::StrCat("request ", request_id, ": no block from shard ", from, " (tag ",
                                                 tag, ") within ", timeout.count(), " ms"));
    }
  }
}

void Mailbox::Close(const std::string& request_id, const std::string& secret) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const RequestKey key(request_id, secret);
    const Clock::time_point now = Clock::now();
    DropExpiredLocked(now);
    if (closed_.insert(key).second) {
      closed_order_.emplace_back(now, key);
      if (closed_order_.size() > kRememberedClosed) {
        closed_.erase(closed_order_.front().second);
        closed_order_.pop_front();
      }
    }
    auto it = inboxes_.find(key);
    if (it != inboxes_.end()) EraseInboxLocked(it);
  }
  arrived_.notify_all();
}

void Mailbox::EraseInboxLocked(std::map<RequestKey, Inbox>::iterator it) {
  Inbox& inbox = it->second;
  total_bytes_ -= inbox.bytes;
  total_blocks_ -= static_cast<int64_t>(inbox.blocks.size());
  if (!inbox.claimed) unclaimed_bytes_ -= inbox.bytes;
  inboxes_.erase(it);
}

void Mailbox::DropExpiredLocked(Clock::time_point now) {
  while (!closed_order_.empty() && now - closed_order_.front().first >= kClosedMemory) {
    closed_.erase(closed_order_.front().second);
    closed_order_.pop_front();
  }
  while (!unclaimed_order_.empty() && now - unclaimed_order_.front().first >= limits_.unclaimed_ttl) {
    const auto [created, key] = std::move(unclaimed_order_.front());
    unclaimed_order_.pop_front();
    auto it = inboxes_.find(key);
    if (it != inboxes_.end() && !it->second.claimed && it->second.created == created) EraseInboxLocked(it);
  }
}

int64_t Mailbox::PendingBlocks() {
  std::lock_guard<std::mutex> lock(mu_);
  DropExpiredLocked(Clock::now());
  return total_blocks_;
}

int64_t Mailbox::PendingBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  DropExpiredLocked(Clock::now());
  return total_bytes_;
}

}  // namespace tessera
