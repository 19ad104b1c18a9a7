// The CUDA engine on every fixture: fp32 and bf16 against the transformers
// references; context parallelism on one GPU (W shards as threads sharing the
// engine, exchanging through an in-process peer group staged via the host)
// against the whole-sequence run, prefill and split-KV decode; K/V growth
// past the capacity hint; bad input refused without harm. Skips without a GPU.
#include <memory>
#include <thread>

#include "coordinator/shard_plan.h"
#include "gtest/gtest.h"
#include "tests/support/sharded_run.h"
#include "tools/engine_greedy_runner.h"
#include "tools/reference_eval.h"
#include "tools/cli/engine_factory.h"
#include "model/safetensors.h"
#include "worker/sampler.h"

namespace tessera {
namespace {

constexpr int kDecodeSteps = 8;

std::string FixtureDir(const std::string& name) { return std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/" + name; }

std::unique_ptr<Engine> LoadOrDie(const std::string& fixture, const std::string& precision) {
  EngineOptions options;
  options.backend = "cuda";
  options.precision = precision;
  absl::StatusOr<std::unique_ptr<Engine>> engine = LoadEngine(FixtureDir(fixture), options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? *std::move(engine) : nullptr;
}

std::vector<int32_t> ReferencePrompt(const std::string& fixture, int64_t length) {
  auto file = SafetensorsFile::Open(FixtureDir(fixture) + "/reference.safetensors");
  EXPECT_TRUE(file.ok()) << file.status();
  auto ids = ReadInt64(**file, "input_ids.200");
  EXPECT_TRUE(ids.ok()) << ids.status();
  return std::vector<int32_t>(ids->begin(), ids->begin() + length);
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
  auto reports = EvaluateAgainstReference(FixtureDir(GetParam()) + "/reference.safetensors",
                                          MakeEngineGreedyRunner(*engine), 1e-3);
  ASSERT_TRUE(reports.ok()) << reports.status();
  std::cout << "fp32 " << GetParam() << "\n" << FormatReports(*reports, 1e-3);
  for (const LengthReport& r : *reports) EXPECT_TRUE(r.passed) << "length " << r.length;
}

TEST_P(CudaEngineTest, Bf16WithinThreePercent) {
  std::unique_ptr<Engine> engine = LoadOrDie(GetParam(), "bf16");
  ASSERT_NE(engine, nullptr);
  auto reports = EvaluateAgainstReference(FixtureDir(GetParam()) + "/reference.safetensors",
                                          MakeEngineGreedyRunner(*engine), 3e-2, /*require_identical_greedy=*/false);
  ASSERT_TRUE(reports.ok()) << reports.status();
  std::cout << "bf16 " << GetParam() << "\n" << FormatReports(*reports, 3e-2, false);
  for (const LengthReport& r : *reports) EXPECT_TRUE(r.passed) << "length " << r.length;
}

void ExpectShardedMatchesWhole(const std::string& fixture, const std::string& precision, double tolerance) {
  std::unique_ptr<Engine> engine = LoadOrDie(fixture, precision);
  ASSERT_NE(engine, nullptr);
  const std::vector<int32_t> prompt = ReferencePrompt(fixture, 200);
  absl::StatusOr<GreedyRun> whole = MakeEngineGreedyRunner(*engine)(prompt, kDecodeSteps);
  ASSERT_TRUE(whole.ok()) << whole.status();
  std::vector<std::vector<int64_t>> cuts = {{0, 2, 18, 77, 200}, {0, 100, 200}};  // shards shorter than the conv width
  for (int shards : {2, 3, 4}) {
    auto planned = PlanShardBounds(200, engine->config().mamba.chunk_size, shards);
    ASSERT_TRUE(planned.ok()) << planned.status();
    cuts.push_back(*planned);
  }
  for (const std::vector<int64_t>& bounds : cuts) {
    SCOPED_TRACE(::testing::Message() << fixture << " " << precision << " shards " << bounds.size() - 1);
    absl::StatusOr<GreedyRun> sharded = testing::RunShardedGreedy(*engine, prompt, bounds, kDecodeSteps);
    ASSERT_TRUE(sharded.ok()) << sharded.status();
    const double prompt_err = RelativeL2(sharded->prompt_logits, whole->prompt_logits);
    const double step_err = RelativeL2(sharded->step_logits, whole->step_logits);
    std::cout << fixture << " " << precision << " W=" << bounds.size() - 1 << ": prompt rel L2 " << prompt_err
              << ", decode rel L2 " << step_err << "\n";
    EXPECT_LE(prompt_err, tolerance);
    EXPECT_LE(step_err, tolerance);
    EXPECT_EQ(sharded->tokens, whole->tokens);
  }
}

TEST_P(CudaEngineTest, ShardedEqualsWholeSequenceFp32) { ExpectShardedMatchesWhole(GetParam(), "fp32", 1e-4); }
TEST_P(CudaEngineTest, ShardedEqualsWholeSequenceBf16) { ExpectShardedMatchesWhole(GetParam(), "bf16", 1e-2); }

TEST_P(CudaEngineTest, DecodePastTheCapacityHintGrowsTheCache) {
  std::unique_ptr<Engine> engine = LoadOrDie(GetParam(), "fp32");
  ASSERT_NE(engine, nullptr);
  const std::vector<int32_t> prompt = ReferencePrompt(GetParam(), 77);
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

INSTANTIATE_TEST_SUITE_P(HfTiny, CudaEngineTest,
                         ::testing::Values("mamba2-tiny", "bamba-tiny", "nemotronh-tiny", "nemotronh-moe-tiny",
                                           "granitemoe-tiny"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name) ch = ch == '-' ? '_' : ch;
                           return name;
                         });

}  // namespace
}  // namespace tessera
