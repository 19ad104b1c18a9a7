// NcclGroups: a worker's communicators by group id, formed once per unique id.
//
// Why a lock per group: forming a communicator blocks until every rank joined
// (seconds, or the whole timeout when a peer never comes). Requests for that
// group must wait for the one Init in flight rather than start a second one
// with the same single-use id, while requests for other groups go on.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "transport/nccl_groups.h"

namespace tessera {

absl::StatusOr<std::shared_ptr<NcclCommunicator>> NcclGroups::GetOrJoin(const std::string& group_id,
                                                                        const std::string& unique_id, int size,
                                                                        int rank, std::chrono::milliseconds timeout,
                                                                        const std::atomic<bool>* cancelled) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + timeout;

  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::shared_ptr<Entry>& slot = groups_[group_id];
    if (slot == nullptr) slot = std::make_shared<Entry>();
    entry = slot;
  }

  // Wait for a join of this group in flight, in slices, to honour our own
  // deadline and cancel flag.
  std::unique_lock<std::timed_mutex> join(entry->join_mu, std::defer_lock);
  while (!join.try_lock_for(std::chrono::milliseconds(10))) {
    if (cancelled != nullptr && cancelled->load()) {
      return absl::CancelledError(absl::StrCat("NCCL group ", group_id, ": cancelled while another request joined it"));
    }
    if (Clock::now() >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          "NCCL group ", group_id, ": another request was still joining it after ", timeout.count(), " ms"));
    }
  }

  if (entry->comm != nullptr) {
    if (entry->unique_id == unique_id && !entry->comm->aborted()) {
      if (entry->comm->size() != size || entry->comm->rank() != rank) {
        return absl::FailedPreconditionError(absl::StrCat("NCCL group ", group_id, ": this worker joined it as rank ",
                                                          entry->comm->rank(), " of ", entry->comm->size(),
                                                          ". Given: rank ", rank, " of ", size));
      }
      return entry->comm;
    }
    // Aborted, or replaced by the coordinator: its id is spent either way.
    entry->spent_ids.push_back(entry->unique_id);
    entry->comm.reset();
    entry->unique_id.clear();
  }
  if (std::find(entry->spent_ids.begin(), entry->spent_ids.end(), unique_id) != entry->spent_ids.end()) {
    return absl::UnavailableError(
        absl::StrCat("NCCL group ", group_id,
                     ": this unique id was already used by a communicator that failed or "
                     "was replaced; ids are single-use; the coordinator must issue a new one"));
  }

  const auto left = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()),
                             std::chrono::milliseconds(0));
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> comm =
      NcclCommunicator::Init(unique_id, size, rank, device_, left, cancelled);
  if (!comm.ok()) {
    // A failed join consumed the id too: its bootstrap may be half done.
    entry->spent_ids.push_back(unique_id);
  } else {
    entry->unique_id = unique_id;
    entry->comm = *comm;
  }
  while (entry->spent_ids.size() > kSpentIdsKept) entry->spent_ids.pop_front();
  return comm;
}

}  // namespace tessera
