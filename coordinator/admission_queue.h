// Where requests wait for room when the cluster is full. One line, ordered by
// priority (lower first, as vLLM's) and then by arrival; only the request at
// its head may try to be admitted, so a later or less urgent request never
// takes the room an earlier one waits for. The head tries again whenever
// Notify says capacity may have changed (a request ended, a worker became
// ready) and at every poll; a waiter leaves when admitted, when its caller
// gives up (cancelled, aborted, shutting down), or after the timeout.
//
// With max_waiting 0 there is no line: a request that does not fit is
// refused at once, as before queues existed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/worker_registry.h"

namespace tessera {

class AdmissionQueue {
 public:
  AdmissionQueue(int32_t max_waiting, absl::Duration timeout, absl::Duration poll_interval)
      : max_waiting_(max_waiting), timeout_(timeout), poll_interval_(poll_interval) {}

  using TryAdmit = std::function<absl::StatusOr<std::unique_ptr<Admission>>()>;

  // `try_admit`'s first answer other than RESOURCE_EXHAUSTED, tried in turn;
  // RESOURCE_EXHAUSTED when the line is full (max_waiting requests wait) or
  // the timeout passed; the first non-OK status of `give_up` (polled while
  // waiting).
  absl::StatusOr<std::unique_ptr<Admission>> Admit(int32_t priority, const TryAdmit& try_admit,
                                                   const std::function<absl::Status()>& give_up);

  // Capacity may have changed: the head tries again.
  void Notify();

  int32_t waiting() const;

 private:
  using Ticket = std::pair<int32_t, uint64_t>;  // (priority, arrival)

  const int32_t max_waiting_;
  const absl::Duration timeout_;
  const absl::Duration poll_interval_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::set<Ticket> waiting_ ABSL_GUARDED_BY(mu_);
  uint64_t next_arrival_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;  // Notify calls and departures: wakes the line
};

}  // namespace tessera
