// A mutex, a condition variable and a map: blocks wait here for their reader.
#include "transport/mailbox.h"

#include "absl/strings/str_cat.h"

namespace tessera {

void Mailbox::Put(const std::string& request_id, uint64_t tag, int from, std::string data) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_.count(request_id) > 0) return;
    blocks_[Key(request_id, tag, from)] = std::move(data);
  }
  arrived_.notify_all();
}

absl::StatusOr<std::string> Mailbox::Take(const std::string& request_id, uint64_t tag, int from,
                                                     std::chrono::milliseconds timeout) {
  const Key key(request_id, tag, from);
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (cancelled_.count(request_id) > 0) {
      return absl::CancelledError(absl::StrCat("request ", request_id, " was cancelled"));
    }
    auto it = blocks_.find(key);
    if (it != blocks_.end()) {
      std::string data = std::move(it->second);
      blocks_.erase(it);
      return data;
    }
    if (arrived_.wait_until(lock, deadline) == std::cv_status::timeout && std::chrono::steady_clock::now() >= deadline) {
      return absl::UnavailableError(absl::StrCat("request ", request_id, ": no block from shard ", from, " (tag ",
                                                 tag, ") within ", timeout.count(), " ms"));
    }
  }
}

void Mailbox::Cancel(const std::string& request_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_.insert(request_id).second) {
      cancelled_order_.push_back(request_id);
      if (cancelled_order_.size() > kRememberedCancellations) {
        cancelled_.erase(cancelled_order_.front());
        cancelled_order_.pop_front();
      }
    }
    for (auto it = blocks_.begin(); it != blocks_.end();) {
      it = std::get<0>(it->first) == request_id ? blocks_.erase(it) : std::next(it);
    }
  }
  arrived_.notify_all();
}

int64_t Mailbox::PendingBlocks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(blocks_.size());
}

}  // namespace tessera
