// The CUDA engine on every fixture: fp32 and bf16 against the transformers
// references; context parallelism on one GPU (W shards as threads sharing the
// engine, exchanging through an in-process peer group staged via the host)
// against the whole-sequence run, prefill and split-KV decode; K/V growth
// past the capacity hint; bad input refused without harm. Skips without a GPU.
#include <memory>
#include <thread>

#include "coordinator/shard_plan.h"
#include "gtest/gtest.h"
#include "tools/engine_greedy_runner.h"
#include "tools/reference_eval.h"
#include "worker/engine_factory.h"
#include "worker/local_peer_group.h"
#include "worker/safetensors.h"
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

class CudaEngineTest : public testing::TestWithParam<std::string> {
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

// Other shards' K/V answered in process, as AttendKv would over gRPC.
class InProcessRemoteKv : public RemoteKvAttention {
 public:
  InProcessRemoteKv(Engine& engine, std::vector<const ShardState*> others) : engine_(engine), others_(std::move(others)) {}
  absl::StatusOr<std::vector<AttentionPartial>> Attend(int64_t slot, absl::Span<const float> q, int64_t q_len,
                                                       int64_t q_position0) override {
    std::vector<AttentionPartial> parts;
    for (const ShardState* s : others_) {
      absl::StatusOr<AttentionPartial> p = engine_.AttendStoredKv(*s, slot, q, q_len, q_position0);
      if (!p.ok()) return p.status();
      parts.push_back(*std::move(p));
    }
    return parts;
  }

 private:
  Engine& engine_;
  std::vector<const ShardState*> others_;
};

// Prompt logits of W shards run concurrently, then greedy decode on the last.
absl::StatusOr<GreedyRun> RunSharded(Engine& engine, const std::vector<int32_t>& prompt,
                                     const std::vector<int64_t>& bounds, int steps) {
  const int size = static_cast<int>(bounds.size()) - 1;
  auto mailbox = std::make_shared<PeerMailbox>();
  std::vector<std::unique_ptr<LocalPeerGroup>> groups;
  std::vector<std::unique_ptr<ShardState>> states;
  for (int r = 0; r < size; ++r) {
    groups.push_back(std::make_unique<LocalPeerGroup>(mailbox, "req", r, size, std::chrono::seconds(60)));
    absl::StatusOr<std::unique_ptr<ShardState>> s = engine.NewState(bounds[r], bounds[r + 1] - bounds[r]);
    if (!s.ok()) return s.status();
    states.push_back(*std::move(s));
  }
  std::vector<absl::StatusOr<std::vector<float>>> logits(size, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      ShardContext ctx;
      ctx.peers = groups[r].get();
      ctx.shard_bounds = bounds;
      logits[r] = engine.Forward(*states[r], absl::MakeConstSpan(prompt).subspan(bounds[r], bounds[r + 1] - bounds[r]),
                                 LogitsRows::kAll, ctx);
    });
  }
  for (std::thread& t : threads) t.join();
  GreedyRun run;
  for (int r = 0; r < size; ++r) {
    if (!logits[r].ok()) return logits[r].status();
    run.prompt_logits.insert(run.prompt_logits.end(), logits[r]->begin(), logits[r]->end());
  }
  std::vector<const ShardState*> others;
  for (int r = 0; r + 1 < size; ++r) {
    states[r]->DropMambaStates();  // as a worker does: only K/V stays
    others.push_back(states[r].get());
  }
  InProcessRemoteKv remote(engine, others);
  ShardContext decode_ctx;
  decode_ctx.remote_kv = size > 1 ? &remote : nullptr;
  const int64_t vocab = engine.config().vocab_size;
  std::vector<float> last(run.prompt_logits.end() - vocab, run.prompt_logits.end());
  for (int step = 0; step < steps; ++step) {
    const int32_t token = GreedyToken(last);
    run.tokens.push_back(token);
    run.step_logits.insert(run.step_logits.end(), last.begin(), last.end());
    const int32_t next[1] = {token};
    absl::StatusOr<std::vector<float>> out = engine.Forward(*states.back(), next, LogitsRows::kLast, decode_ctx);
    if (!out.ok()) return out.status();
    last = *std::move(out);
  }
  return run;
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
    SCOPED_TRACE(testing::Message() << fixture << " " << precision << " shards " << bounds.size() - 1);
    absl::StatusOr<GreedyRun> sharded = RunSharded(*engine, prompt, bounds, kDecodeSteps);
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

INSTANTIATE_TEST_SUITE_P(HfTiny, CudaEngineTest, testing::Values("mamba2-tiny", "bamba-tiny", "nemotronh-tiny"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name) ch = ch == '-' ? '_' : ch;
                           return name;
                         });

}  // namespace
}  // namespace tessera
