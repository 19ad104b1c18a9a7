// try_admit runs without the line's lock: a successful admission tells the
// registry's change listener, which calls Notify.
#include "coordinator/admission_queue.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tessera {

absl::StatusOr<std::unique_ptr<Admission>> AdmissionQueue::Admit(int32_t priority, const TryAdmit& try_admit,
                                                                  const std::function<absl::Status()>& give_up) {
  if (max_waiting_ <= 0) return try_admit();
  const absl::Time deadline = absl::Now() + timeout_;
  absl::MutexLock lock(&mu_);
  const Ticket ticket{priority, next_arrival_++};
  bool in_line = false;
  auto leave = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (in_line) waiting_.erase(ticket);
    in_line = false;
    ++changes_;  // the next in line may be the head now
  };
  while (true) {
    const bool my_turn = in_line ? *waiting_.begin() == ticket : waiting_.empty() || ticket < *waiting_.begin();
    if (my_turn) {
      mu_.Unlock();
      absl::StatusOr<std::unique_ptr<Admission>> admission = try_admit();
      mu_.Lock();
      if (admission.ok() || !absl::IsResourceExhausted(admission.status())) {
        leave();
        changed_.SignalAll();
        return admission;
      }
    }
    if (!in_line) {
      if (static_cast<int32_t>(waiting_.size()) >= max_waiting_) {
        return absl::ResourceExhaustedError(absl::StrCat("the cluster is full and ", waiting_.size(),
                                                         " requests already wait for room (--max-queued-requests ",
                                                         max_waiting_, "); retry later"));
      }
      waiting_.insert(ticket);
      in_line = true;
    }
    const uint64_t seen = changes_;
    const absl::Time wake = std::min(deadline, absl::Now() + poll_interval_);
    while (changes_ == seen && absl::Now() < wake) changed_.WaitWithDeadline(&mu_, wake);
    if (absl::Status stop = give_up(); !stop.ok()) {
      leave();
      changed_.SignalAll();
      return stop;
    }
    if (absl::Now() >= deadline) {
      leave();
      changed_.SignalAll();
      return absl::ResourceExhaustedError(absl::StrCat("the cluster stayed full for ", absl::FormatDuration(timeout_),
                                                       " while this request waited for room; retry later"));
    }
  }
}

void AdmissionQueue::Notify() {
  absl::MutexLock lock(&mu_);
  ++changes_;
  changed_.SignalAll();
}

int32_t AdmissionQueue::waiting() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int32_t>(waiting_.size());
}

}  // namespace tessera
