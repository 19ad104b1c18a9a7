// Decode steps and prefill pieces on one engine take turns, so that a long
// prefill does not stall the requests decoding beside it (issue 14).
//
// Why turns as well as two streams: decode steps run on the device's
// highest-priority streams, but a prefill's kernels are long and hold every
// SM, so a step's kernels still queue behind them. On an H200 (8B-shaped
// model, 8 streams decoding at 4K beside 64K-token prefills,
// decode_during_prefill_bench) steps took 5.8 ms at the median and up to
// 33 ms without turns (1 ms alone); with pieces of 4096 tokens, 4.6 ms and
// at most 18 ms, for a prefill 7% slower (369 against 343 ms). (Before the
// CUDA backend downloaded through pinned memory, a prefill's final download
// held the driver and stalled every step beside it for the whole prefill:
// 300+ ms.) So while requests decode, an unsharded prefill runs in short
// pieces (the engine's prefill budget) and, before each piece, lets the
// decode step in flight finish. A prefill that starts with nobody decoding
// runs its usual pieces. Context-parallel shards run in one pass and take no
// turns.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace tessera {

// The worker's default prefill budget (--prefill-budget-tokens): a piece of
// 4,096 tokens of the 8B-shaped model takes ~12 ms on an H200 at the start of
// a prompt and ~25 ms at 64K (its attention over the prefix), so decoding
// requests get a token every 15-30 ms while a long prompt prefills, and the
// prefill loses ~2% to the extra pieces.
inline constexpr int64_t kDefaultPrefillBudgetTokens = 4096;

class DecodeTurns {
 public:
  using Clock = std::chrono::steady_clock;
  // A decode step this recent still counts as decoding: the scheduler runs
  // steps back to back while it has requests, with gaps of microseconds.
  static constexpr std::chrono::milliseconds kActiveWindow{50};
  // The longest a prefill piece waits for a step (a step stuck on a dead
  // peer must not hold a prefill for its whole timeout).
  static constexpr std::chrono::milliseconds kMaxWait{1000};

  // A decode step's turn, for its lifetime.
  class Step {
   public:
    explicit Step(DecodeTurns& turns) : turns_(turns) { turns_.Begin(); }
    ~Step() { turns_.End(); }
    Step(const Step&) = delete;
    Step& operator=(const Step&) = delete;

   private:
    DecodeTurns& turns_;
  };

  // Whether requests are decoding: a step is running or one ended within
  // kActiveWindow.
  bool DecodeActive() const;
  // Returns once every step running at the call has ended (at once when
  // none is), or after kMaxWait.
  void WaitForRunningSteps();

 private:
  void Begin();
  void End();

  mutable std::mutex mu_;
  std::condition_variable ended_;
  int running_ = 0;        // steps running now
  int64_t started_ = 0;    // steps ever begun
  int64_t finished_ = 0;   // steps ever ended
  Clock::time_point last_end_{};
};

}  // namespace tessera
