// Admission rules without a network: shard counts, who decodes, and which
// status a request that does not fit gets.
#include "coordinator/shard_placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/striped_rounds.h"
#include "coordinator/worker_capacity.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

std::vector<WorkerRoom> EmptyWorkers(int count, int64_t capacity) {
  return std::vector<WorkerRoom>(count, WorkerRoom{capacity, capacity});
}

PlacementRequest Request(int64_t prompt, int64_t max_new, int64_t min_shard = 8, int64_t chunk = 4) {
  return PlacementRequest{prompt, max_new, min_shard, chunk, 0};
}

TEST(ShardPlacementTest, NoWorkerIsUnavailable) {
  EXPECT_EQ(PlaceShards(Request(10, 1), {}).status().code(), absl::StatusCode::kUnavailable);
}

TEST(ShardPlacementTest, ShardCountFollowsPromptLength) {
  const auto workers = EmptyWorkers(4, 1000);
  EXPECT_EQ(PlaceShards(Request(7, 1), workers)->size(), 1u);
  EXPECT_EQ(PlaceShards(Request(16, 1), workers)->size(), 2u);
  EXPECT_EQ(PlaceShards(Request(24, 1), workers)->size(), 3u);
  EXPECT_EQ(PlaceShards(Request(500, 1), workers)->size(), 4u);
}

TEST(ShardPlacementTest, ShardsCoverThePromptInOrderOnDistinctWorkers) {
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(100, 5), EmptyWorkers(3, 1000));
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 3u);
  EXPECT_EQ(slots->front().token_begin, 0);
  EXPECT_EQ(slots->back().token_end, 100);
  for (size_t r = 0; r < slots->size(); ++r) {
    EXPECT_EQ((*slots)[r].worker, static_cast<int>(r));
    if (r > 0) EXPECT_EQ((*slots)[r].token_begin, (*slots)[r - 1].token_end);
    if (r + 1 < slots->size()) EXPECT_EQ((*slots)[r].token_end % 4, 0) << "chunk-aligned cut";
  }
}

// Zigzag: 2W chunk-aligned pieces, shard r holding pieces W-1-r and W+r, so
// the last shard holds the prompt's start and end; one shard stays whole.
TEST(ShardPlacementTest, ZigzagDealsTwoPiecesAShardBalancedAndTheEndLast) {
  PlacementRequest request = Request(100, 5);
  request.zigzag = true;
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(request, EmptyWorkers(3, 1000));
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 3u);
  // 25 chunks of 4 over 6 pieces: 5, 4, 4, 4, 4, 4 chunks.
  const std::vector<std::vector<int64_t>> want = {{36, 52, 52, 68}, {20, 36, 68, 84}, {0, 20, 84, 100}};
  for (size_t r = 0; r < 3; ++r) {
    const ShardSlot& s = (*slots)[r];
    EXPECT_EQ((std::vector<int64_t>{s.token_begin, s.token_end, s.late_begin, s.late_end}), want[r]) << "shard " << r;
  }
  std::vector<int> workers;
  for (const ShardSlot& s : *slots) workers.push_back(s.worker);
  EXPECT_THAT(workers, ::testing::UnorderedElementsAre(0, 1, 2));

  absl::StatusOr<std::vector<ShardSlot>> alone = PlaceShards(Request(7, 1), EmptyWorkers(3, 1000));
  request.prompt_tokens = 7;
  alone = PlaceShards(request, EmptyWorkers(3, 1000));
  ASSERT_TRUE(alone.ok()) << alone.status();
  ASSERT_EQ(alone->size(), 1u);
  EXPECT_EQ((*alone)[0].late_end, (*alone)[0].late_begin);  // no late piece
  EXPECT_EQ((*alone)[0].tokens(), 7);
}

TEST(ShardPlacementTest, ZigzagShardsNeedRoomForBothPieces) {
  PlacementRequest request = Request(100, 50);
  request.zigzag = true;
  // Shard 2 holds 36 prompt tokens + 50 generated: a worker of 80 cannot be last.
  std::vector<WorkerRoom> workers = {WorkerRoom{80, 80}, WorkerRoom{80, 80}, WorkerRoom{200, 200}};
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(request, workers);
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 3u);
  EXPECT_EQ(slots->back().worker, 2);
  EXPECT_EQ(slots->back().tokens(), 36);
}

TEST(ShardPlacementTest, OverCapacityIsInvalidArgumentQuotingIt) {
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(190, 20), EmptyWorkers(2, 100));
  EXPECT_EQ(slots.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(slots.status().message(), HasSubstr("must be <= 200"));
  EXPECT_THAT(slots.status().message(), HasSubstr("Given: 190 + 20 = 210"));
}

TEST(ShardPlacementTest, TakenCapacityIsResourceExhausted) {
  std::vector<WorkerRoom> workers = {{100, 30}};
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(50, 10), workers);
  EXPECT_EQ(slots.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(slots.status().message(), HasSubstr("momentarily full: 30 tokens free, 60 needed"));
}

TEST(ShardPlacementTest, BusyWorkersAreSkipped) {
  // Worker 0 is full; the two shards go to workers 1 and 2.
  std::vector<WorkerRoom> workers = {{1000, 0}, {1000, 1000}, {1000, 1000}};
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(16, 1), workers);
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_EQ((*slots)[0].worker, 1);
  EXPECT_EQ((*slots)[1].worker, 2);
}

TEST(ShardPlacementTest, MoreShardsWhenOneWorkerCannotHoldTheShard) {
  // A long min_shard_tokens asks for one shard, which fits no single worker.
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(150, 10, 1024), EmptyWorkers(3, 100));
  ASSERT_TRUE(slots.ok()) << slots.status();
  EXPECT_EQ(slots->size(), 2u);
}

TEST(ShardPlacementTest, LastShardNeedsRoomForGeneratedTokens) {
  // 2 x 100 tokens hold 190, but an even cut leaves the decoding worker with
  // 74 prompt tokens + 40 generated: it can never fit.
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(150, 40), EmptyWorkers(2, 100));
  EXPECT_EQ(slots.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(slots.status().message(), HasSubstr("40 generated tokens"));
  // A bigger worker takes the decoding shard wherever it is registered.
  std::vector<WorkerRoom> mixed = {{200, 200}, {100, 100}};
  slots = PlaceShards(Request(150, 40), mixed);
  ASSERT_TRUE(slots.ok()) << slots.status();
  EXPECT_EQ(slots->back().worker, 0);
}

// A shard of several runs in one prefill pass; one shard alone runs in pieces.
TEST(ShardPlacementTest, AShardOfSeveralFitsItsWorkersPassAndOneShardNeedsOnlyRoom) {
  std::vector<WorkerRoom> workers = EmptyWorkers(3, 1000);
  for (WorkerRoom& w : workers) w.pass_tokens = 40;
  // 3 shards of 32 fit the passes.
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(96, 5), workers);
  ASSERT_TRUE(slots.ok()) << slots.status();
  EXPECT_EQ(slots->size(), 3u);
  // 3 shards of ~100 do not: one worker holds it all.
  slots = PlaceShards(Request(300, 5), workers);
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 1u);
  EXPECT_EQ(slots->front().token_end, 300);
  // The pass bounds prompt tokens only: a last shard of 40 + 5 generated fits a pass of 40.
  std::vector<WorkerRoom> two = EmptyWorkers(2, 1000);
  for (WorkerRoom& w : two) w.pass_tokens = 40;
  slots = PlaceShards(Request(80, 5, 8, 40), two);
  ASSERT_TRUE(slots.ok()) << slots.status();
  EXPECT_EQ(slots->size(), 2u);
  // Neither split nor one worker: refused up front, saying what bounds it.
  slots = PlaceShards(Request(1200, 5), workers);
  EXPECT_EQ(slots.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(slots.status().message(), HasSubstr("no worker holds it all"));
  EXPECT_THAT(slots.status().message(), HasSubstr("one prefill pass (as few as 40 tokens"));
}

// Workers that run a shard of several in rounds: the plan takes the fewest
// rounds in which every shard's piece of a round fits its worker's pass, the
// same for every shard, instead of giving up the split.
TEST(ShardPlacementTest, ShardsLongerThanAPassRunInTheFewestRoundsThatFitEveryWorker) {
  std::vector<WorkerRoom> workers = EmptyWorkers(3, 1000);
  for (WorkerRoom& w : workers) {
    w.pass_tokens = 40;
    w.max_rounds = static_cast<int32_t>(kMaxPrefillRounds);
  }
  auto longest_piece = [](const std::vector<ShardSlot>& slots) {
    std::vector<int64_t> shares;
    for (const ShardSlot& s : slots) shares.push_back(s.tokens());
    int64_t longest = 0;
    for (const StripedPiece& p : StripedPieces(shares, slots[0].prefill_rounds)) {
      longest = std::max(longest, p.end - p.begin);
    }
    return longest;
  };
  // `prompt` tokens go to 3 shards in `rounds` rounds, every slot saying so, each piece within `pass`.
  auto expect_rounds = [&](int64_t prompt, int32_t rounds, int64_t pass) {
    SCOPED_TRACE(::testing::Message() << prompt << " tokens");
    absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(prompt, 5), workers);
    ASSERT_TRUE(slots.ok()) << slots.status();
    ASSERT_EQ(slots->size(), 3u);
    for (const ShardSlot& s : *slots) EXPECT_EQ(s.prefill_rounds, rounds);
    EXPECT_EQ(slots->back().token_end, prompt);
    EXPECT_LE(longest_piece(*slots), pass);
  };
  expect_rounds(96, 1, 40);   // 3 shards of 32 fit the passes: one round
  expect_rounds(300, 3, 40);  // 3 shards of 100 in passes of 40: pieces of 33 and 34
  workers[1].pass_tokens = 20;
  expect_rounds(300, 5, 20);  // the shortest pass decides for all
  workers[1].pass_tokens = 40;
  expect_rounds(1200, 10, 40);  // past one worker's room the split is the only plan, however long a pass
  // A worker that runs fewer rounds than the plan needs takes no shard of it.
  workers[2].max_rounds = 2;
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(1200, 5), workers);
  EXPECT_EQ(slots.status().code(), absl::StatusCode::kInvalidArgument) << slots.status();
  slots = PlaceShards(Request(300, 5), workers);
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 1u) << "no split of 3 fits: one worker takes it all, in pieces";
}

// A zigzag plan runs in one round: when its shards do not fit a pass, the
// count is planned contiguous, in rounds.
TEST(ShardPlacementTest, AZigzagPlanThatDoesNotFitItsPassesRunsContiguousInRounds) {
  std::vector<WorkerRoom> workers = EmptyWorkers(2, 1000);
  for (WorkerRoom& w : workers) {
    w.pass_tokens = 100;
    w.max_rounds = static_cast<int32_t>(kMaxPrefillRounds);
  }
  PlacementRequest request = Request(160, 5);
  request.zigzag = true;
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(request, workers);
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_GT(slots->front().late_end, slots->front().late_begin) << "fits its passes: zigzag";
  EXPECT_EQ(slots->front().prefill_rounds, 1);
  request.prompt_tokens = 400;
  slots = PlaceShards(request, workers);
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 2u);
  for (const ShardSlot& s : *slots) {
    EXPECT_EQ(s.late_end, s.late_begin) << "no late piece";
    EXPECT_EQ(s.prefill_rounds, 2);
  }
}

// When no split fits (here: busy workers), one worker with room takes the request.
// Busy workers make a split wait, as before pieces existed: one worker takes
// the whole request only when no split could fit even on idle workers (a
// retry right after a failure must not turn into a different plan because
// the failed shard is still being released).
TEST(ShardPlacementTest, ASplitThatFitsIdleWorkersWaitsForThemInsteadOfGoingToOne) {
  const std::vector<WorkerRoom> workers = {{1000, 0}, {1000, 0}, {1000, 1000}};
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(24, 1), workers);
  EXPECT_EQ(slots.status().code(), absl::StatusCode::kResourceExhausted) << slots.status();
}

// Finding 8: placement always took the first worker that fit.
TEST(ShardPlacementTest, TheLeastLoadedWorkerThatFitsTakesTheShard) {
  // Fewest running shards first, then the smallest share of capacity in use.
  std::vector<WorkerRoom> workers = {{1000, 1000, 2}, {1000, 1000, 1}, {1000, 1000, 1}};
  workers[1].free_tokens = 500;
  absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(Request(4, 1), workers);
  ASSERT_TRUE(slots.ok()) << slots.status();
  EXPECT_EQ(slots->front().worker, 2);
  // A least loaded worker without room is passed over.
  workers[2].free_tokens = 2;
  slots = PlaceShards(Request(4, 1), workers);
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(slots->front().worker, 1);
  // Shards of one request on distinct workers, least loaded first.
  workers = {{1000, 1000, 3}, {1000, 1000, 0}, {1000, 1000, 1}, {1000, 1000, 0}};
  slots = PlaceShards(Request(16, 1), workers);
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_EQ((*slots)[0].worker, 1);
  EXPECT_EQ((*slots)[1].worker, 3);
}

TEST(ShardPlacementTest, TiesRotateForOneShardAndKeepRanksForSeveral) {
  const std::vector<WorkerRoom> workers = EmptyWorkers(3, 1000);
  for (uint64_t rotation = 0; rotation < 6; ++rotation) {
    PlacementRequest one = Request(4, 1);
    one.rotation = rotation;
    EXPECT_EQ(PlaceShards(one, workers)->front().worker, static_cast<int>(rotation % 3));
    PlacementRequest three = Request(24, 1);
    three.rotation = rotation;
    absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(three, workers);
    ASSERT_TRUE(slots.ok());
    for (int r = 0; r < 3; ++r) EXPECT_EQ((*slots)[r].worker, r) << "same workers, same ranks (NCCL groups)";
  }
}

TEST(ShardPlacementTest, CapacitySumsSaturate) {
  const std::vector<WorkerRoom> huge = {{INT64_MAX, INT64_MAX}, {INT64_MAX, INT64_MAX}};
  EXPECT_EQ(TotalCapacityTokens(huge), INT64_MAX);
  EXPECT_EQ(TotalFreeTokens(huge), INT64_MAX);
}

TEST(WorkerCapacityTest, BytesToTokens) {
  v1::WorkerStatus status;
  status.set_memory_budget_bytes(1000 + 100 * 50 + 99);
  status.set_state_bytes_per_request(1000);
  status.set_kv_bytes_per_token(100);
  EXPECT_EQ(WorkerCapacityTokens(status), 50);
  EXPECT_EQ(WorkerFreeTokens(status, 100 * 20), 30);
  EXPECT_EQ(WorkerFreeTokens(status, 1 << 20), 0);
  EXPECT_EQ(ShardReservationBytes(status, 7), 1700);
}

// A worker that prefills a one-shard request in pieces is not capped by its
// one-pass limit; an older one (no pieces reported) is.
TEST(WorkerCapacityTest, ThePassLimitCapsCapacityOnlyWithoutPieces) {
  v1::WorkerStatus status;
  status.set_memory_budget_bytes(1000 + 100 * 50);
  status.set_state_bytes_per_request(1000);
  status.set_kv_bytes_per_token(100);
  EXPECT_EQ(WorkerPassTokens(status), kUnboundedTokens);
  status.set_max_shard_tokens(20);
  EXPECT_EQ(WorkerPassTokens(status), 20);
  EXPECT_EQ(WorkerCapacityTokens(status), 20);
  EXPECT_EQ(WorkerFreeTokens(status, 100 * 40), 10);
  status.set_prefill_chunk_tokens(8);
  EXPECT_EQ(WorkerCapacityTokens(status), 50);
  EXPECT_EQ(WorkerFreeTokens(status, 100 * 40), 10);
  EXPECT_EQ(WorkerFreeTokens(status, 100 * 20), 30);
  EXPECT_TRUE(CheckWorkerStatus(status).ok());
  status.set_prefill_chunk_tokens(-1);
  EXPECT_EQ(CheckWorkerStatus(status).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(WorkerCapacityTest, PrefillRoundsAreOneForOlderWorkersAndBounded) {
  v1::WorkerStatus status;
  EXPECT_EQ(WorkerPrefillRounds(status), 1);
  status.set_max_prefill_rounds(7);
  EXPECT_EQ(WorkerPrefillRounds(status), 7);
  status.set_max_prefill_rounds(1 << 30);
  EXPECT_EQ(WorkerPrefillRounds(status), kMaxPrefillRounds);
  status.set_max_prefill_rounds(-3);
  EXPECT_EQ(WorkerPrefillRounds(status), 1);
}

TEST(WorkerCapacityTest, NoKvMeansUnboundedUpToThePositionLimit) {
  v1::WorkerStatus status;
  status.set_memory_budget_bytes(5000);
  status.set_state_bytes_per_request(1000);
  EXPECT_EQ(WorkerCapacityTokens(status), kUnboundedTokens);
  status.set_max_context_tokens(4096);
  EXPECT_EQ(WorkerCapacityTokens(status), 4096);
  EXPECT_EQ(WorkerFreeTokens(status, 4500), 0) << "no room for one more request's state";
}

}  // namespace
}  // namespace tessera
