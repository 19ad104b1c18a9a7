// Context parallelism is exact: W shards, each on its own thread with an
// in-process peer group, give the single-process logits for every fixture,
// for W = 1..4, for cuts on and off chunk boundaries, shards shorter than the
// conv width, and more shards than chunks; the load-balanced (zigzag) plan
// for W = 2..8 on lengths not divisible by 2W, down to one token a piece;
// then split-KV decode from the shard holding the prompt's end gives the
// single-process greedy continuation. A plan in rounds (striped pieces,
// common/striped_rounds.h) for W = 2..4 and R = 2..3, on lengths not
// divisible by R·W, down to one token a piece, gives them too, reporting its
// progress over all its rounds and stopping between them when cancelled.
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "coordinator/shard_plan.h"
#include "gtest/gtest.h"
#include "tools/reference_eval.h"
#include "tests/support/sharded_run.h"
#include "tools/engine_greedy_runner.h"
#include "worker/cpu/cpu_backend.h"
#include "model/model_weights.h"
#include "model/safetensors.h"

namespace tessera {
namespace {

// Sharded and whole-sequence runs differ only by fp32 reassociation.
constexpr double kShardedTolerance = 1e-5;
constexpr int kDecodeSteps = 8;

struct Case {
  std::string fixture;
  int64_t length;
  std::vector<int64_t> bounds;  // empty: PlanShardBounds with `shards` (zigzag: with 2 · shards pieces)
  int shards;
  bool zigzag = false;          // bounds are a zigzag plan's 2W + 1 piece bounds
  int rounds = 1;               // > 1: the contiguous plan's shares dealt in this many rounds
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.fixture + "_L" + std::to_string(info.param.length) + "_W" +
                     std::to_string(info.param.shards) + (info.param.bounds.empty() ? "" : "_custom") +
                     (info.param.zigzag ? "_zigzag" : "") +
                     (info.param.rounds > 1 ? "_R" + std::to_string(info.param.rounds) : "");
  for (char& ch : name) ch = ch == '-' ? '_' : ch;
  return name;
}

class ContextParallelTest : public ::testing::TestWithParam<Case> {};

TEST_P(ContextParallelTest, ShardedEqualsWholeSequence) {
  const Case& c = GetParam();
  const std::string dir = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/" + c.fixture;
  absl::StatusOr<std::unique_ptr<ModelWeights>> w = LoadModelWeights(dir);
  ASSERT_TRUE(w.ok()) << w.status();
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> ref = SafetensorsFile::Open(dir + "/reference.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status();
  absl::StatusOr<std::vector<int64_t>> ids = ReadInt64(**ref, "input_ids.200");
  ASSERT_TRUE(ids.ok()) << ids.status();
  const std::vector<int32_t> prompt(ids->begin(), ids->begin() + c.length);

  const int pieces_count = c.zigzag ? 2 * c.shards : c.shards;
  std::vector<int64_t> bounds = c.bounds;
  if (bounds.empty()) {
    absl::StatusOr<std::vector<int64_t>> planned =
        PlanShardBounds(c.length, (*w)->config.mamba.chunk_size, pieces_count);
    ASSERT_TRUE(planned.ok()) << planned.status();
    bounds = *planned;
  }
  ASSERT_EQ(static_cast<int>(bounds.size()), pieces_count + 1);
  std::vector<int64_t> shares;  // (W): tokens each shard holds
  for (size_t r = 0; r + 1 < bounds.size(); ++r) shares.push_back(bounds[r + 1] - bounds[r]);
  const std::vector<ShardPiece> pieces = c.zigzag         ? ZigzagPieces(bounds)
                                         : c.rounds > 1 ? RoundPieces(shares, c.rounds)
                                                        : ContiguousPieces(bounds);

  // Whole sequence in one state (matches transformers to 1e-6: see golden_test).
  absl::StatusOr<std::unique_ptr<Engine>> made = MakeCpuEngineView(**w);
  ASSERT_TRUE(made.ok()) << made.status();
  std::unique_ptr<Engine> engine = *std::move(made);
  absl::StatusOr<GreedyRun> whole = MakeEngineGreedyRunner(*engine)(prompt, kDecodeSteps);
  ASSERT_TRUE(whole.ok()) << whole.status();
  const int64_t vocab = (*w)->config.vocab_size;

  absl::StatusOr<GreedyRun> run = testing::RunShardedGreedy(*engine, prompt, pieces, kDecodeSteps);
  ASSERT_TRUE(run.ok()) << run.status();
  const double prompt_error = RelativeL2(run->prompt_logits, whole->prompt_logits);
  const double step_error = RelativeL2(run->step_logits, whole->step_logits);
  RecordProperty("prompt_relative_l2", absl::StrCat(prompt_error));
  RecordProperty("decode_relative_l2", absl::StrCat(step_error));
  EXPECT_LE(prompt_error, kShardedTolerance);
  EXPECT_LE(step_error, kShardedTolerance);
  EXPECT_EQ(run->tokens, whole->tokens);
  // The prompt logits also match transformers' own (prefix rows of logits.200).
  absl::StatusOr<std::vector<float>> ref_logits = ReadFloat32(**ref, "logits.200");
  ASSERT_TRUE(ref_logits.ok());
  EXPECT_LE(RelativeL2(run->prompt_logits, absl::MakeConstSpan(*ref_logits).subspan(0, c.length * vocab)), 1e-4);
}

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  for (const char* fixture : {"mamba2-tiny", "bamba-tiny", "nemotronh-tiny", "nemotronh-moe-tiny", "granitemoe-tiny"}) {
    for (int w = 1; w <= 4; ++w) cases.push_back({fixture, 200, {}, w});  // aligned to chunks of 16
    cases.push_back({fixture, 77, {}, 3});                                 // 77 not divisible by 3 or 16
    cases.push_back({fixture, 77, {0, 10, 12, 50, 77}, 4});                // unaligned, a 2-token shard < conv width
    cases.push_back({fixture, 6, {}, 4});                                  // more shards than chunks: 2,2,1,1
    cases.push_back({fixture, 3, {0, 1, 2, 3}, 3});                        // one token per shard
    for (int w = 5; w <= 8; ++w) cases.push_back({fixture, 200, {}, w});  // every worker count up to 8
    for (int w = 2; w <= 8; ++w) cases.push_back({fixture, 200, {}, w, true});  // zigzag; 7 and 8: > chunks
    cases.push_back({fixture, 77, {}, 3, true});                             // 77 over 6 pieces
    cases.push_back({fixture, 77, {0, 30, 31, 33, 77}, 2, true});            // unaligned, 1- and 2-token pieces
    cases.push_back({fixture, 16, {}, 8, true});                             // one token a piece
    for (int w = 2; w <= 4; ++w) {
      for (int r = 2; r <= 3; ++r) cases.push_back({fixture, 200, {}, w, false, r});  // rounds
    }
    cases.push_back({fixture, 77, {}, 3, false, 2});                      // 77 = 32 + 32 + 13 over 2 rounds
    cases.push_back({fixture, 77, {0, 20, 23, 50, 77}, 4, false, 3});     // unaligned, a 1-token piece per round
    cases.push_back({fixture, 9, {0, 3, 6, 9}, 3, false, 3});             // one token a piece
    cases.push_back({fixture, 11, {0, 2, 5, 11}, 3, false, 2});           // pieces shorter than the conv width
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ContextParallelTest, ::testing::ValuesIn(AllCases()), CaseName);

// A prefill in rounds reports its progress over all its rounds (layers times
// rounds, never going back), and a progress callback that says CANCELLED
// after the first round stops every rank there: the second round never
// starts, each state holds the first round's piece exactly.
TEST(PrefillInRoundsTest, ProgressSpansTheRoundsAndCancellationStopsBetweenThem) {
  const std::string dir = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/bamba-tiny";
  absl::StatusOr<std::unique_ptr<ModelWeights>> w = LoadModelWeights(dir);
  ASSERT_TRUE(w.ok()) << w.status();
  absl::StatusOr<std::unique_ptr<Engine>> engine = MakeCpuEngineView(**w);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const int64_t layers = (*w)->config.num_layers;
  constexpr int kRanks = 3;
  constexpr int kRounds = 3;
  const std::vector<ShardPiece> pieces = RoundPieces({20, 20, 21}, kRounds);
  std::vector<int32_t> prompt(61);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(1 + i % 50);
  for (const bool cancel : {false, true}) {
    SCOPED_TRACE(cancel ? "cancelled after round 0" : "all rounds");
    std::vector<std::vector<std::pair<int64_t, int64_t>>> progress(kRanks);  // (ranks): (done, total) reported
    auto progress_of = [&](int r) {
      return [&, r](int64_t done, int64_t total) -> absl::Status {
        if (cancel && !progress[r].empty() && progress[r].back().first >= layers) {
          return absl::CancelledError("cancelled");
        }
        progress[r].push_back({done, total});
        return absl::OkStatus();
      };
    };
    const std::unique_ptr<testing::ShardedPrefill> run =
        testing::RunShardedPrefill(**engine, prompt, pieces, 0, LogitsRows::kNone, progress_of);
    ASSERT_EQ(static_cast<int>(run->states.size()), kRanks);
    for (int r = 0; r < kRanks; ++r) {
      ASSERT_FALSE(progress[r].empty());
      for (size_t i = 0; i < progress[r].size(); ++i) {
        EXPECT_EQ(progress[r][i].second, kRounds * layers);
        if (i > 0) {
          EXPECT_GE(progress[r][i].first, progress[r][i - 1].first) << "rank " << r;
        }
      }
      if (!cancel) {
        EXPECT_TRUE(run->logits[r].ok()) << run->logits[r].status();
        EXPECT_EQ(progress[r].back().first, kRounds * layers);
        EXPECT_EQ(run->states[r]->num_tokens(), pieces[2 * kRanks + r].end);
      } else {
        EXPECT_EQ(run->logits[r].status().code(), absl::StatusCode::kCancelled) << run->logits[r].status();
        EXPECT_EQ(progress[r].back().first, layers);
        EXPECT_EQ(run->states[r]->num_tokens(), pieces[r].end) << "rank " << r << " ran round 0 alone";
      }
    }
  }
}

TEST(ShardPlanTest, AlignsToChunksAndFallsBackToTokens) {
  EXPECT_EQ(*PlanShardBounds(200, 16, 4), (std::vector<int64_t>{0, 64, 112, 160, 200}));
  EXPECT_EQ(*PlanShardBounds(77, 16, 3), (std::vector<int64_t>{0, 32, 64, 77}));
  EXPECT_EQ(*PlanShardBounds(6, 16, 4), (std::vector<int64_t>{0, 2, 4, 5, 6}));
  EXPECT_EQ(*PlanShardBounds(5, 16, 1), (std::vector<int64_t>{0, 5}));
  EXPECT_FALSE(PlanShardBounds(3, 16, 4).ok());
  EXPECT_FALSE(PlanShardBounds(3, 16, 0).ok());
  EXPECT_EQ(ChooseShardCount(100, 4, 1024), 1);
  EXPECT_EQ(ChooseShardCount(5000, 4, 1024), 4);
  EXPECT_EQ(ChooseShardCount(2500, 4, 1024), 2);
  EXPECT_EQ(ChooseShardCount(3, 4, 1), 3);
}

}  // namespace
}  // namespace tessera
