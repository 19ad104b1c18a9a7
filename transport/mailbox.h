// Where blocks sent to this worker wait for the forward pass that asks for
// them, keyed by (request, tag, sender); a block is bytes. Shared by the
// in-process transport and the gRPC transport's receiving side. A waiting Recv wakes on arrival,
// on its request's cancellation, or on timeout (UNAVAILABLE, never a hang).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"

namespace tessera {

class Mailbox {
 public:
  void Put(const std::string& request_id, uint64_t tag, int from, std::string data);

  // Waits until the block is there, the request is cancelled, or `timeout` passes.
  absl::StatusOr<std::string> Take(const std::string& request_id, uint64_t tag, int from,
                                          std::chrono::milliseconds timeout);

  // Wakes and fails every Take of `request_id`, drops its blocks, and drops
  // blocks that arrive for it later. Called when a request ends, however it ends.
  void Cancel(const std::string& request_id);

  int64_t PendingBlocks() const;

 private:
  using Key = std::tuple<std::string, uint64_t, int>;
  mutable std::mutex mu_;
  std::condition_variable arrived_;
  std::map<Key, std::string> blocks_;
  // Ended requests, so that blocks still on their way are dropped; only the
  // most recent kRememberedCancellations are kept (late blocks come within
  // seconds, not thousands of requests later).
  static constexpr size_t kRememberedCancellations = 65536;
  std::set<std::string> cancelled_;
  std::deque<std::string> cancelled_order_;
};

}  // namespace tessera
