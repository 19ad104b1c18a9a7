// The CUDA engine on every fixture: fp32 and bf16 against the transformers
// references; context parallelism on one GPU (W shards as threads sharing the
// engine, exchanging through an in-process peer group staged via the host)
// against the whole-sequence run, prefill and split-KV decode; a prompt in
// pieces (chunked prefill) against one pass; K/V growth
// past the capacity hint; bad input refused without harm. Skips without a GPU.
#include <cuda_runtime.h>

#include <memory>
#include <thread>

#include "common/status_macros.h"
#include "coordinator/shard_plan.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/chunked_run.h"
#include "tests/support/hf_tiny.h"
#include "tests/support/sharded_run.h"
#include "tools/engine_greedy_runner.h"
#include "tools/reference_eval.h"
#include "tools/cli/engine_factory.h"
#include "model/safetensors.h"
#include "worker/sampler.h"

namespace tessera {
namespace {

constexpr int kDecodeSteps = 8;

using testing::HfTinyDir;
using testing::HfTinyPrompt;

std::unique_ptr<Engine> LoadOrDie(const std::string& fixture, const std::string& precision) {
  EngineOptions options;
  options.backend = "cuda";
  options.precision = precision;
  absl::StatusOr<std::unique_ptr<Engine>> engine = LoadEngine(HfTinyDir(fixture), options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? *std::move(engine) : nullptr;
}

// An engine, the 200-token reference prompt, and its run in one pass.
struct OnePassRun {
  std::unique_ptr<Engine> engine;
  std::vector<int32_t> prompt;
  GreedyRun whole;
};

absl::StatusOr<OnePassRun> RunOnePass(const std::string& fixture, const std::string& precision) {
  OnePassRun run;
  run.engine = LoadOrDie(fixture, precision);
  if (run.engine == nullptr) return absl::FailedPreconditionError("no engine");
  run.prompt = HfTinyPrompt(fixture, 200);
  ASSIGN_OR_RETURN(run.whole, MakeEngineGreedyRunner(*run.engine)(run.prompt, kDecodeSteps));
  return run;
}

class CudaEngineTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (VisibleCudaDevices() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(CudaEngineTest, Fp32MatchesTransformers) {
  std::unique_ptr<Engine> engine = LoadOrDie(GetParam(), "fp32");
  ASSERT_NE(engine, nullptr);
  auto reports = EvaluateAgainstReference(HfTinyDir(GetParam()) + "/reference.safetensors",
                                          MakeEngineGreedyRunner(*engine), 1e-3);
  ASSERT_TRUE(reports.ok()) << reports.status();
  std::cout << "fp32 " << GetParam() << "\n" << FormatReports(*reports, 1e-3);
  for (const LengthReport& r : *reports) EXPECT_TRUE(r.passed) << "length " << r.length;
}

TEST_P(CudaEngineTest, Bf16WithinItsBound) {
  const double bound = testing::HfTinyBf16Bounds(GetParam()).vs_reference;
  std::unique_ptr<Engine> engine = LoadOrDie(GetParam(), "bf16");
  ASSERT_NE(engine, nullptr);
  auto reports = EvaluateAgainstReference(HfTinyDir(GetParam()) + "/reference.safetensors",
                                          MakeEngineGreedyRunner(*engine), bound, /*require_identical_greedy=*/false);
  ASSERT_TRUE(reports.ok()) << reports.status();
  std::cout << "bf16 " << GetParam() << "\n" << FormatReports(*reports, bound, false);
  for (const LengthReport& r : *reports) EXPECT_TRUE(r.passed) << "length " << r.length;
}

void ExpectShardedMatchesWhole(const std::string& fixture, const std::string& precision, double tolerance) {
  absl::StatusOr<OnePassRun> one_pass = RunOnePass(fixture, precision);
  ASSERT_TRUE(one_pass.ok()) << one_pass.status();
  const std::unique_ptr<Engine>& engine = one_pass->engine;
  const std::vector<int32_t>& prompt = one_pass->prompt;
  const GreedyRun& whole = one_pass->whole;
  // Contiguous plans (shards shorter than the conv width among them), then
  // zigzag plans of W = 2..8 (2W pieces; 200 tokens do not divide by 2W),
  // then plans in rounds.
  std::vector<std::vector<ShardPiece>> plans = {ContiguousPieces({0, 2, 18, 77, 200}), ContiguousPieces({0, 100, 200})};
  for (int shards : {2, 3, 4}) {
    auto planned = PlanShardBounds(200, engine->config().mamba.chunk_size, shards);
    ASSERT_TRUE(planned.ok()) << planned.status();
    plans.push_back(ContiguousPieces(*planned));
  }
  for (int shards = 2; shards <= 8; ++shards) {
    auto planned = PlanShardBounds(200, engine->config().mamba.chunk_size, 2 * shards);
    ASSERT_TRUE(planned.ok()) << planned.status();
    plans.push_back(ZigzagPieces(*planned));
  }
  // Plans in rounds (striped pieces, common/striped_rounds.h): W = 2..8 in
  // 2 or 3 rounds, pieces off chunk boundaries, and one of 1- to 3-token pieces.
  for (int shards = 2; shards <= 8; ++shards) {
    auto planned = PlanShardBounds(200, engine->config().mamba.chunk_size, shards);
    ASSERT_TRUE(planned.ok()) << planned.status();
    std::vector<int64_t> shares;
    for (int r = 0; r < shards; ++r) shares.push_back((*planned)[r + 1] - (*planned)[r]);
    plans.push_back(RoundPieces(shares, 2 + shards % 2));
  }
  plans.push_back(RoundPieces({3, 5, 7, 185}, 3));
  for (const std::vector<ShardPiece>& pieces : plans) {
    const int ranks = pieces.back().rank + 1;
    const int rounds = pieces.back().round + 1;
    const std::string plan = absl::StrCat(rounds > 1                                       ? absl::StrCat("R=", rounds, " ")
                                          : pieces.size() == static_cast<size_t>(ranks) ? ""
                                                                                         : "zigzag ",
                                          "W=", ranks);
    SCOPED_TRACE(::testing::Message() << fixture << " " << precision << " " << plan);
    absl::StatusOr<GreedyRun> sharded = testing::RunShardedGreedy(*engine, prompt, pieces, kDecodeSteps);
    ASSERT_TRUE(sharded.ok()) << sharded.status();
    const double prompt_err = RelativeL2(sharded->prompt_logits, whole.prompt_logits);
    const double step_err = RelativeL2(sharded->step_logits, whole.step_logits);
    std::cout << fixture << " " << precision << " " << plan << ": prompt rel L2 " << prompt_err
              << ", decode rel L2 " << step_err << "\n";
    EXPECT_LE(prompt_err, tolerance);
    EXPECT_LE(step_err, tolerance);
    EXPECT_EQ(sharded->tokens, whole.tokens);
  }
}

TEST_P(CudaEngineTest, ShardedEqualsWholeSequenceFp32) { ExpectShardedMatchesWhole(GetParam(), "fp32", 1e-4); }
TEST_P(CudaEngineTest, ShardedEqualsWholeSequenceBf16) {
  ExpectShardedMatchesWhole(GetParam(), "bf16", testing::HfTinyBf16Bounds(GetParam()).between_runs);
}

// Chunked prefill: pieces that do and do not divide the SSD chunk and the
// prompt give the one-pass result. fp32: every row, to reassociation. bf16:
// a piece that starts off a chunk boundary cuts the scan's chunks elsewhere,
// so the bf16 roundings inside them differ (rows up to ~3% apart; pieces that
// are multiples of the chunk came out identical on an H200), as between
// shards: the bound is the sharded one (HfTinyBf16Bounds) on all prompt
// logits, with the same greedy tokens. Pieces of one token are fp32 only: in bf16 they run the
// one-token update for every prompt token, decode's arithmetic, which the
// bf16 evals bound against the references instead (a router near-tie flips
// one row of nemotronh-moe-tiny's experts: 3.2e-2 on all rows).
void ExpectPiecesMatchOnePass(const std::string& fixture, const std::string& precision) {
  const bool fp32 = precision == "fp32";
  absl::StatusOr<OnePassRun> one_pass = RunOnePass(fixture, precision);
  ASSERT_TRUE(one_pass.ok()) << one_pass.status();
  for (int64_t piece : {1, 7, 64, 100}) {
    if (piece == 1 && !fp32) continue;
    SCOPED_TRACE(::testing::Message() << fixture << " " << precision << " pieces of " << piece);
    absl::StatusOr<testing::PieceComparison> c = testing::CompareInPieces(*one_pass->engine, one_pass->prompt,
                                                                          one_pass->whole, piece, kDecodeSteps);
    ASSERT_TRUE(c.ok()) << c.status();
    std::cout << fixture << " " << precision << " pieces of " << piece << ": prompt rel L2 " << c->prompt
              << " (worst row " << c->worst_row << "), decode rel L2 " << c->steps << "\n";
    const double bound = fp32 ? 1e-5 : testing::HfTinyBf16Bounds(fixture).between_runs;
    EXPECT_LE(fp32 ? c->worst_row : c->prompt, bound);
    EXPECT_LE(c->steps, bound);
    EXPECT_TRUE(c->same_tokens);
  }
}

TEST_P(CudaEngineTest, PiecesEqualOnePassFp32) { ExpectPiecesMatchOnePass(GetParam(), "fp32"); }
TEST_P(CudaEngineTest, PiecesEqualOnePassBf16) { ExpectPiecesMatchOnePass(GetParam(), "bf16"); }

TEST_P(CudaEngineTest, DecodePastTheCapacityHintGrowsTheCache) {
  std::unique_ptr<Engine> engine = LoadOrDie(GetParam(), "fp32");
  ASSERT_NE(engine, nullptr);
  const std::vector<int32_t> prompt = HfTinyPrompt(GetParam(), 77);
  absl::StatusOr<GreedyRun> hinted = MakeEngineGreedyRunner(*engine)(prompt, 24);  // hint covers every step
  ASSERT_TRUE(hinted.ok()) << hinted.status();
  auto state = engine->NewState(0, 1);  // hint far too small: every append may grow
  ASSERT_TRUE(state.ok()) << state.status();
  auto logits = engine->Forward(**state, prompt, LogitsRows::kLast);
  ASSERT_TRUE(logits.ok()) << logits.status();
  std::vector<int32_t> tokens;
  for (int step = 0; step < 24; ++step) {
    tokens.push_back(GreedyToken(*logits));
    const int32_t next[1] = {tokens.back()};
    logits = engine->Forward(**state, next, LogitsRows::kLast);
    ASSERT_TRUE(logits.ok()) << logits.status();
  }
  EXPECT_EQ(tokens, hinted->tokens);
}

// Memory the engine allocates (K/V, states, a decode graph's input block) is
// zeroed before anything queued after the allocation runs. The zeroing once
// went to the legacy default stream, which the engine's non-blocking streams
// do not wait for: behind other legacy-stream work (here ~4 GiB of memsets
// queued first; in the field, two workers warming up on one GPU) it landed
// after the prefill had written the fresh K/V, or after a decode graph's
// pointer table was uploaded (an illegal address in SsdStep). Each run: a
// prefill into a fresh ~256 MiB cache gives the logits of one that ran alone.
TEST_P(CudaEngineTest, AFreshStateIsZeroedBeforeThePrefillWritesIt) {
  std::unique_ptr<Engine> engine = LoadOrDie(GetParam(), "fp32");
  ASSERT_NE(engine, nullptr);
  if (engine->KvBytesPerToken() == 0) GTEST_SKIP() << "no K/V to allocate";
  const std::vector<int32_t> prompt = HfTinyPrompt(GetParam(), 77);
  auto alone = engine->NewState(0, 77);
  ASSERT_TRUE(alone.ok()) << alone.status();
  absl::StatusOr<std::vector<float>> want = engine->Forward(**alone, prompt, LogitsRows::kAll);
  ASSERT_TRUE(want.ok()) << want.status();
  constexpr size_t kBlockerBytes = size_t{1} << 30;
  void* blocker = nullptr;  // (1 GiB) legacy-stream work queued before each allocation
  ASSERT_EQ(cudaMalloc(&blocker, kBlockerBytes), cudaSuccess);
  const int64_t cache_tokens = (int64_t{256} << 20) / engine->KvBytesPerToken();
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < 4; ++k) ASSERT_EQ(cudaMemsetAsync(blocker, k, kBlockerBytes, cudaStreamLegacy), cudaSuccess);
    auto fresh = engine->NewState(0, cache_tokens);
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    absl::StatusOr<std::vector<float>> got = engine->Forward(**fresh, prompt, LogitsRows::kAll);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, *want) << "run " << i;
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  cudaFree(blocker);
}

TEST_P(CudaEngineTest, BadInputIsRefusedAndTheEngineStaysUsable) {
  std::unique_ptr<Engine> engine = LoadOrDie(GetParam(), "bf16");
  ASSERT_NE(engine, nullptr);
  auto state = engine->NewState(0, 8);
  ASSERT_TRUE(state.ok());
  const int32_t bad[2] = {1, static_cast<int32_t>(engine->config().vocab_size)};
  EXPECT_EQ(engine->Forward(**state, bad, LogitsRows::kLast).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Forward(**state, {}, LogitsRows::kLast).status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<float> q(3);
  EXPECT_EQ(engine->AttendStoredKv(**state, 0, q, 1, 0).status().code(), absl::StatusCode::kInvalidArgument);
  auto fresh = engine->NewState(0, 8);
  ASSERT_TRUE(fresh.ok());
  const int32_t good[2] = {1, 2};
  EXPECT_TRUE(engine->Forward(**fresh, good, LogitsRows::kLast).ok());
  (*fresh)->DropMambaStates();
  if (engine->config().CountBlocks(BlockKind::kMamba) > 0) {
    EXPECT_EQ(engine->Forward(**fresh, good, LogitsRows::kLast).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

INSTANTIATE_TEST_SUITE_P(HfTiny, CudaEngineTest, testing::HfTinyFamilies(), testing::HfTinyTestName);

}  // namespace
}  // namespace tessera
