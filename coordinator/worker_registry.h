// The workers the coordinator knows: whether each is ready, what it last
// reported, and what the coordinator has reserved on it for running shards.
//
// Lifecycle: RegisterWorker adds a worker (or refreshes it; workers
// re-register every second, a restarted one maybe on a new port). A worker
// is ready after a successful GetStatus whose numbers are possible
// (CheckWorkerStatus: a worker reporting a budget of 2^63 - 1 bytes, say, is
// not ready, and the reason is logged and shown in GetServerInfo) and stays
// ready until `failures_before_unready` health checks in a row fail; a worker
// neither answering nor re-registering for `forget_after` is forgotten.
//
// Memory: the coordinator is the one that places shards, so its own
// reservations are the truth about what is taken; memory a worker reports
// beyond the reservations in force while its status was taken (a request of
// an earlier coordinator, say) is counted as held too. Admission plans and
// reserves under one lock, so concurrent requests never overcommit a worker.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/coordinator_options.h"
#include "coordinator/prefix_directory.h"
#include "tessera/v1/worker.grpc.pb.h"

namespace tessera {

// One worker as GetServerInfo and GetModelInfo see it.
struct WorkerView {
  std::string address;
  bool ready = false;
  v1::WorkerStatus status;      // the last successful GetStatus
  int64_t reserved_bytes = 0;   // the coordinator's reservations for running shards
  int64_t held_bytes = 0;       // reserved + reported memory no reservation explains
  int32_t running_shards = 0;   // shards of this coordinator's requests on it now
  int64_t capacity_tokens = 0;  // for one request, with the worker empty
  int64_t free_tokens = 0;      // for one new request, now
  std::string not_ready_reason;  // empty when ready
};

// One shard of an admitted request.
struct ShardLease {
  std::string address;
  std::shared_ptr<v1::Worker::Stub> stub;
  int64_t token_begin = 0;  // global positions [token_begin, token_end)
  int64_t token_end = 0;
  int64_t late_begin = 0;  // a zigzag plan's second piece [late_begin, late_end); empty otherwise
  int64_t late_end = 0;
  // > 1: the plan's prefill runs in this many rounds (the same on every
  // shard; worker.proto RunShardRequest.prefill_rounds), and
  // [token_begin, token_end) is the shard's share, dealt by common/striped_rounds.h.
  int32_t prefill_rounds = 1;
  int64_t reserved_bytes = 0;
  std::vector<std::string> peer_transports;  // as the worker last reported them
  std::string device_id;                     // its GPU, empty on the CPU
};

// Whether the plan deals the prompt zigzag (every shard holds a late piece).
inline bool IsZigzag(const std::vector<ShardLease>& shards) {
  return !shards.empty() && shards[0].late_end > shards[0].late_begin;
}

// Whether each shard holds the one span [token_begin, token_end) in one pass
// (neither zigzag nor in rounds): the plans whose spans a worker may keep for reuse.
inline bool IsContiguous(const std::vector<ShardLease>& shards) {
  return !IsZigzag(shards) && (shards.empty() || shards[0].prefill_rounds <= 1);
}

class WorkerRegistry;

// A request's shards with the memory reserved for them; destroying it returns
// the reservations (on every path: success, error, cancellation).
class Admission {
 public:
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;
  ~Admission();

  const std::vector<ShardLease>& shards() const { return shards_; }
  int64_t eos_token_id() const { return eos_token_id_; }
  // > 0: a resumed plan (AdmitResumed): the prefix its workers hold ends here.
  int64_t resume_from() const { return resume_from_; }

 private:
  friend class WorkerRegistry;
  explicit Admission(WorkerRegistry* registry) : registry_(registry) {}

  WorkerRegistry* registry_;
  std::vector<uint64_t> worker_ids_;  // parallel to shards_
  std::vector<ShardLease> shards_;
  int64_t eos_token_id_ = -1;  // as the workers report it
  int64_t resume_from_ = 0;
};

class WorkerRegistry {
 public:
  // `expected_vocab_size` > 0: a worker reporting another vocabulary serves
  // another model and is never ready.
  WorkerRegistry(const CoordinatorOptions& options, int64_t expected_vocab_size);
  WorkerRegistry(const WorkerRegistry&) = delete;
  WorkerRegistry& operator=(const WorkerRegistry&) = delete;
  ~WorkerRegistry();  // stops the health checks

  // Called after anything that may change which workers are ready or how
  // much room they have (a health round, a registration, an unreachable
  // worker, an admission, a release), never under the registry's lock. Set
  // before the health checks start and before anything registers.
  void SetChangeListener(std::function<void()> listener) { change_listener_ = std::move(listener); }
  // Called with a worker's address when it stops being ready or is
  // forgotten, never under the registry's lock. Set it when the change listener is set.
  void SetLeftListener(std::function<void(const std::string& address)> listener) {
    left_listener_ = std::move(listener);
  }

  // Starts (Stop: stops and joins) the thread that checks every worker each
  // health interval.
  void StartHealthChecks();
  void StopHealthChecks();

  // Adds or refreshes a worker; a new or not-ready one is checked at once.
  // Returns how many workers are ready.
  int Register(const std::string& address);

  // One round of GetStatus on every known worker; returns when all answered
  // or timed out.
  void CheckAllWorkers();

  // A running shard's call to the worker failed as if it were gone: drop it
  // from planning until a health check succeeds again.
  void MarkUnreachable(const std::string& address);

  std::vector<WorkerView> Workers() const;  // in registration order
  // The ready workers' addresses and stubs, in registration order.
  std::vector<std::pair<std::string, std::shared_ptr<v1::Worker::Stub>>> ReadyStubs() const;

  // Plans the request's shards over the ready workers but those in
  // `excluded` (addresses) and reserves their memory (see shard_placement.h
  // for the statuses and how the least loaded worker is chosen). With
  // `preferred` (an address: the worker that holds a cached prefix of the
  // prompt, prefix_directory.h), the whole request goes to that worker as
  // one shard when it has room for it now; else it is planned as usual.
  // `align_tokens` > 0: shard bounds on multiples of it (prefix blocks, so
  // that each shard's span can be resumed from) when that plan fits.
  // `zigzag`: a plan of several shards deals the prompt zigzag
  // (shard_placement.h; no span is then kept for reuse).
  absl::StatusOr<std::unique_ptr<Admission>> Admit(int64_t prompt_tokens, int64_t max_new_tokens,
                                                   const std::set<std::string>& excluded = {},
                                                   const std::string& preferred = "", int64_t align_tokens = 0,
                                                   bool zigzag = false);
  // A resumed plan (worker.proto RunShardRequest.resume_from): the shards of
  // `held` on their workers, the last one extended to the prompt's end, when
  // every one of them is ready, not excluded, and has room now;
  // RESOURCE_EXHAUSTED otherwise (the caller then plans as usual).
  absl::StatusOr<std::unique_ptr<Admission>> AdmitResumed(int64_t prompt_tokens, int64_t max_new_tokens,
                                                          const std::vector<SegmentHint>& held,
                                                          const std::set<std::string>& excluded);

 private:
  struct Entry {
    std::string address;
    std::shared_ptr<v1::Worker::Stub> stub;
    bool has_status = false;
    v1::WorkerStatus status;
    bool ready = false;
    int consecutive_failures = 0;
    absl::Time last_heard;  // last successful check or registration
    int64_t reserved_bytes = 0;
    int64_t unexplained_bytes = 0;  // reported used beyond the reservations
    int32_t running_shards = 0;
    std::string not_ready_reason;  // empty when ready
  };
  struct Probe;

  friend class Admission;
  void Release(const std::vector<uint64_t>& worker_ids, const std::vector<ShardLease>& shards);
  absl::StatusOr<std::unique_ptr<Admission>> AdmitLocked(int64_t prompt_tokens, int64_t max_new_tokens,
                                                         const std::set<std::string>& excluded,
                                                         const std::string& preferred, int64_t align_tokens,
                                                         bool zigzag)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks the entry not ready for `reason`, logging the reason when it is new.
  void SetNotReady(Entry& entry, const std::string& reason, std::vector<std::string>& left)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyChange() const {
    if (change_listener_) change_listener_();
  }
  // Tells the left listener about every address in `left`.
  void NotifyLeft(const std::vector<std::string>& left) const;
  void RunProbes(std::vector<std::unique_ptr<Probe>>& probes);
  // Appends the worker's address to `left` when it stops being ready.
  void ApplyProbe(const Probe& probe, bool count_failure, std::vector<std::string>& left)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetSilentWorkers(std::vector<std::string>& left) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int ReadyCountLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  WorkerView ViewOf(const Entry& entry) const;
  void HealthLoop();

  const CoordinatorOptions options_;
  const int64_t expected_vocab_size_;
  std::function<void()> change_listener_;
  std::function<void(const std::string& address)> left_listener_;

  mutable absl::Mutex mu_;
  std::map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);  // by id = registration order
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t admissions_ ABSL_GUARDED_BY(mu_) = 0;  // rotates placement ties
  bool stop_health_ ABSL_GUARDED_BY(mu_) = false;
  std::thread health_thread_;
};

}  // namespace tessera
