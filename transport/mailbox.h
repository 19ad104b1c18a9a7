// Where blocks sent to this worker wait for the forward pass that asks for
// them. A block is bytes, filed under its request (id and secret: a block
// with another request's id but not its secret is filed apart and never
// taken), its tag and its sender. A waiting Take wakes on arrival, on its
// request's closing, or on timeout (UNAVAILABLE, never a hang).
//
// Memory is bounded for whatever a peer sends: a block larger than the
// model's largest exchange is refused (INVALID_ARGUMENT); undelivered bytes
// are bounded per request, for requests no shard here claims, and in all
// (RESOURCE_EXHAUSTED); blocks of a request no shard claims (Open) within
// `unclaimed_ttl` are dropped. Each block is charged its bytes plus a fixed
// overhead, so that a flood of empty blocks is bounded too.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace tessera {

struct MailboxLimits {
  int64_t max_block_bytes = int64_t{1} << 30;     // one block's data
  int64_t max_request_bytes = int64_t{4} << 30;   // undelivered, per request
  int64_t max_unclaimed_bytes = int64_t{1} << 30;  // undelivered, of requests no shard claimed, in all
  int64_t max_total_bytes = int64_t{8} << 30;     // undelivered, in all
  std::chrono::milliseconds unclaimed_ttl{10000};  // then an unclaimed request's blocks are dropped
};

// What each undelivered block costs beyond its data (map node, key, strings).
inline constexpr int64_t kMailboxBlockOverheadBytes = 256;

class Mailbox {
 public:
  explicit Mailbox(MailboxLimits limits = {}) : limits_(limits) {}

  const MailboxLimits& limits() const { return limits_; }

  // A shard of (request_id, secret) runs here: its blocks are kept until
  // taken or the request is closed, whatever the time.
  void Open(const std::string& request_id, const std::string& secret);

  // Files a block. INVALID_ARGUMENT for a block over max_block_bytes,
  // RESOURCE_EXHAUSTED past a bound; OK (and dropped) for a closed request.
  absl::Status Put(const std::string& request_id, const std::string& secret, uint64_t tag, int from,
                   std::string data);

  // Waits until the block is there, the request is closed, or `timeout`
  // passes. Claims the request (as Open) if nothing did yet.
  absl::StatusOr<std::string> Take(const std::string& request_id, const std::string& secret, uint64_t tag, int from,
                                   std::chrono::milliseconds timeout);

  // Wakes and fails every Take of (request_id, secret), drops its blocks, and
  // drops blocks that arrive for it later. Called when a request ends,
  // however it ends. Another secret's blocks under the same id are untouched.
  void Close(const std::string& request_id, const std::string& secret);

  // Undelivered blocks and their charged bytes (expired ones dropped first).
  int64_t PendingBlocks();
  int64_t PendingBytes();

 private:
  using RequestKey = std::pair<std::string, std::string>;  // (id, secret)
  using Clock = std::chrono::steady_clock;
  struct Inbox {
    std::map<std::pair<uint64_t, int>, std::string> blocks;  // by (tag, from)
    int64_t bytes = 0;                                        // charged
    bool claimed = false;
    Clock::time_point created;
  };

  void DropExpiredLocked(Clock::time_point now);
  void EraseInboxLocked(std::map<RequestKey, Inbox>::iterator it);
  bool ClosedLocked(const RequestKey& key) const { return closed_.count(key) > 0; }

  const MailboxLimits limits_;
  std::mutex mu_;
  std::condition_variable arrived_;
  std::map<RequestKey, Inbox> inboxes_;
  int64_t total_bytes_ = 0;
  int64_t unclaimed_bytes_ = 0;
  int64_t total_blocks_ = 0;
  // Unclaimed inboxes by creation, for expiry (an entry whose inbox was
  // claimed, closed or re-created since is skipped).
  std::deque<std::pair<Clock::time_point, RequestKey>> unclaimed_order_;
  // Closed requests, so that blocks still on their way are dropped, for
  // kClosedMemory and at most kRememberedClosed of them: late blocks come
  // within seconds, and one that comes later only waits out unclaimed_ttl,
  // so what is remembered stays flat however many requests a worker serves.
  // Keyed by secret too: closing a request cannot affect another that
  // reuses its id.
  static constexpr std::chrono::seconds kClosedMemory{30};
  static constexpr size_t kRememberedClosed = 65536;
  std::set<RequestKey> closed_;
  std::deque<std::pair<Clock::time_point, RequestKey>> closed_order_;
};

}  // namespace tessera
