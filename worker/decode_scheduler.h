// Continuous batching of decode on one worker: one thread runs the next token
// of every running request as one forward pass (Engine::DecodeStep: the
// weights are read once per step, whatever the number of requests), samples
// each row with that request's own Sampler (SampleDetailed: log-probabilities
// too when asked), and hands the tokens to the
// requests' call threads. A call thread owns its request's stream and
// delivers the tokens itself, so a slow client never stalls the batch.
// Requests join after their prefill and their first token, and leave when
// they finish, fail or are cancelled; both happen between steps.
//
// Fairness: requests run in the order they joined. With more runnable than
// max_batch, a step takes the first max_batch and moves them behind the rest
// (round robin, FIFO): each runs at least once in every ceil(n / max_batch)
// steps. A request whose caller has max_undelivered_tokens tokens it has not
// taken yet sits out steps until it takes one (its memory stays bounded).
//
// Failure: a request's own failure in a step (its split-KV query, K/V that
// cannot grow) fails that request alone. A failure of the pass itself (a
// shared op) leaves every state of the step partly advanced, so it fails
// exactly the requests of that step; the others, and later joiners, go on.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine.h"
#include "worker/sampler.h"
#include "worker/shard_context.h"
#include "worker/shard_request.h"
#include "worker/shard_state.h"
#include "worker/worker_metrics.h"

namespace tessera {

inline constexpr int kDefaultMaxDecodeBatch = 64;

struct DecodeSchedulerOptions {
  int max_batch = kDefaultMaxDecodeBatch;  // requests in one step, >= 1
  int max_undelivered_tokens = 16;         // a request this far ahead of its caller sits out, >= 1
  WorkerMetrics* metrics = nullptr;        // optional; must outlive the scheduler
};

// When a request's decode ends (the finish rules of a shard request).
struct DecodeStopRules {
  std::vector<int32_t> stop_token_ids;
  int64_t eos_token_id = -1;  // -1: none
  int32_t max_new_tokens = 0;

  // Why the `generated`-th token, `token`, ends the request; none if it does not.
  std::optional<FinishReason> Check(int32_t token, int32_t generated) const;
};

// What a request brings when it joins: its state and the rules to go on by.
// The pointers must stay valid until the request has left.
struct DecodeJoin {
  ShardState* state = nullptr;                    // the request's memory here, prefilled
  std::mutex* state_mu = nullptr;                 // held around every step that touches `state`
  const ShardContext* ctx = nullptr;              // remote_kv: split-KV over the other ranks; null: none
  std::atomic<int64_t>* memory_bytes = nullptr;   // set to state->MemoryBytes() after each step; may be null
  const std::atomic<bool>* cancelled = nullptr;   // the request is cancelled once true; may be null
  std::unique_ptr<Sampler> sampler;               // the request's sampler, used by the scheduler from now on
  DecodeStopRules rules;
  bool return_logits = false;  // each token's event carries its logits row
  int32_t next_token = 0;      // the last token sampled: the next step runs it
  int32_t generated = 0;       // tokens sampled so far (next_token included)
};

// One thing a call thread receives, in order: tokens, then the finish.
struct DecodeEvent {
  enum class Kind { kToken, kFinished };
  Kind kind = Kind::kToken;
  SampledToken sampled;       // kToken: the choice, with its log-probabilities when the request asks
  std::vector<float> logits;  // kToken with return_logits: (vocab) behind the choice
  FinishReason reason = FinishReason::kLength;  // kFinished
  int32_t generated = 0;                        // kFinished: tokens sampled in all
};

class DecodeScheduler {
 private:
  struct Entry;

 public:
  // A joined request, as its call thread holds it; leaving is its destructor.
  class Member {
   public:
    Member(DecodeScheduler& scheduler, std::shared_ptr<Entry> entry)
        : scheduler_(scheduler), entry_(std::move(entry)) {}
    // Leaves: returns once no step uses the request's state.
    ~Member();
    Member(const Member&) = delete;
    Member& operator=(const Member&) = delete;

    // Blocks for the next event. CANCELLED once the request is cancelled,
    // the step's error if its step failed, UNAVAILABLE if the scheduler stops.
    absl::StatusOr<DecodeEvent> Next();

   private:
    DecodeScheduler& scheduler_;
    std::shared_ptr<Entry> entry_;
  };

  // `engine` must outlive the scheduler. Starts the thread.
  DecodeScheduler(Engine& engine, DecodeSchedulerOptions options);
  // Stops the thread after its step; members still joined get UNAVAILABLE.
  ~DecodeScheduler();
  DecodeScheduler(const DecodeScheduler&) = delete;
  DecodeScheduler& operator=(const DecodeScheduler&) = delete;

  // The request runs in the steps from the next one on.
  std::unique_ptr<Member> Join(DecodeJoin join);

  const DecodeSchedulerOptions& options() const { return options_; }
  // Requests joined and not yet left.
  int members() const;

 private:
  struct Entry {
    DecodeJoin join;
    std::chrono::steady_clock::time_point joined;
    // Guarded by the scheduler's mu_.
    std::deque<DecodeEvent> events;  // not yet taken by the call thread
    absl::Status error;              // the request failed
    bool done = false;               // finished or failed: runs no more
    bool left = false;
    bool in_step = false;
    bool stepped = false;            // has been in a step (the queueing metric counts the first)
    std::condition_variable ready;   // an event, an error, a stop
  };

  bool Runnable(const Entry& e) const;
  void Loop();
  // The step's members, the first max_batch runnable ones, moved behind the
  // rest; drops left members. Under mu_.
  void PickBatch(std::vector<std::shared_ptr<Entry>>& batch);
  void RunStep(const std::vector<std::shared_ptr<Entry>>& batch);
  void Leave(const std::shared_ptr<Entry>& entry);

  Engine& engine_;
  const DecodeSchedulerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable work_;       // a member joined, or took a token
  std::condition_variable step_done_;  // members of a step are out of it
  std::deque<std::shared_ptr<Entry>> queue_;  // joined members in run order
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace tessera
