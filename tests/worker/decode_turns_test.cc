// DecodeTurns: when requests count as decoding (a step running, or one that
// ended within the active window), and a prefill piece's wait for the steps
// running when it asks (at once with none; until the last of them ends,
// whatever steps begin meanwhile; never past kMaxWait).
#include "worker/decode_turns.h"

#include <chrono>
#include <memory>
#include <thread>

#include "gtest/gtest.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

TEST(DecodeTurnsTest, DecodingWhileAStepRunsAndForTheActiveWindowAfter) {
  DecodeTurns turns;
  EXPECT_FALSE(turns.DecodeActive()) << "no step yet";
  {
    DecodeTurns::Step step(turns);
    EXPECT_TRUE(turns.DecodeActive());
  }
  EXPECT_TRUE(turns.DecodeActive()) << "a step just ended";
  std::this_thread::sleep_for(DecodeTurns::kActiveWindow + milliseconds(20));
  EXPECT_FALSE(turns.DecodeActive());
}

TEST(DecodeTurnsTest, AWaitWithNoStepRunningReturnsAtOnce) {
  DecodeTurns turns;
  { DecodeTurns::Step step(turns); }
  const auto start = Clock::now();
  turns.WaitForRunningSteps();
  EXPECT_LT(Clock::now() - start, milliseconds(50));
}

TEST(DecodeTurnsTest, AWaitLastsUntilTheRunningStepsEndNotTheOnesBegunAfter) {
  DecodeTurns turns;
  auto first = std::make_unique<DecodeTurns::Step>(turns);
  std::unique_ptr<DecodeTurns::Step> second;
  std::thread decoder([&] {
    std::this_thread::sleep_for(milliseconds(100));
    second = std::make_unique<DecodeTurns::Step>(turns);  // begins after the wait began
    first.reset();                                          // the step the wait is for ends
  });
  const auto start = Clock::now();
  turns.WaitForRunningSteps();
  const auto waited = Clock::now() - start;
  decoder.join();
  EXPECT_GE(waited, milliseconds(90)) << "returned before the running step ended";
  EXPECT_LT(waited, DecodeTurns::kMaxWait) << "waited for the step begun after the call";
  second.reset();
}

TEST(DecodeTurnsTest, AStuckStepHoldsAWaitNoLongerThanTheLimit) {
  DecodeTurns turns;
  DecodeTurns::Step stuck(turns);
  const auto start = Clock::now();
  turns.WaitForRunningSteps();
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, DecodeTurns::kMaxWait - milliseconds(10));
  EXPECT_LT(waited, DecodeTurns::kMaxWait + milliseconds(500));
}

}  // namespace
}  // namespace tessera
