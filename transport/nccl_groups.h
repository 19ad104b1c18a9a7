// The NCCL communicators a worker holds, one per worker group, by the group id
// the coordinator gave (coordinator/nccl_groups.h hands out the ids).
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "transport/nccl_communicator.h"

namespace tessera {

// The communicators a worker holds, one per worker group, by the group id the
// coordinator gave. A group's communicator is created on its first request
// (every rank joins with the same unique id) and kept while it works; one
// that was aborted is dropped, and a request naming that group again with the
// same unique id fails with UNAVAILABLE (ids are single-use). A request with
// a new unique id replaces the group's communicator (requests still holding
// the old one keep it until they finish).
class NcclGroups {
 public:
  explicit NcclGroups(int device) : device_(device) {}
  // Concurrent calls for one group wait for a single Init (within their own
  // `timeout` and *cancelled); calls for other groups never wait on it.
  // FAILED_PRECONDITION when the cached communicator of `unique_id` has
  // another size or rank.
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> GetOrJoin(const std::string& group_id, const std::string& unique_id,
                                                              int size, int rank, std::chrono::milliseconds timeout,
                                                              const std::atomic<bool>* cancelled);
  int device() const { return device_; }

 private:
  // Ids of dropped or failed communicators remembered per group.
  static constexpr size_t kSpentIdsKept = 64;

  // One group. join_mu is held while the group's communicator is looked up or
  // formed, so concurrent requests for the group share one Init; the fields
  // below it are guarded by it.
  struct Entry {
    std::timed_mutex join_mu;
    std::string unique_id;                   // of comm
    std::shared_ptr<NcclCommunicator> comm;  // null before the first join
    std::deque<std::string> spent_ids;       // single-use ids already consumed, oldest first
  };

  int device_;
  std::mutex mu_;                                         // guards the map only, never held across Init
  std::map<std::string, std::shared_ptr<Entry>> groups_;  // by group id
};

}  // namespace tessera
