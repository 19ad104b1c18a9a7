// Context parallelism is exact: W shards, each on its own thread with an
// in-process peer group, give the single-process logits for every fixture,
// for W = 1..4, for cuts on and off chunk boundaries, shards shorter than the
// conv width, and more shards than chunks; then split-KV decode from the last
// shard gives the single-process greedy continuation.
#include <memory>
#include <thread>

#include "coordinator/shard_plan.h"
#include "gtest/gtest.h"
#include "tools/reference_eval.h"
#include "worker/cpu_forward.h"
#include "worker/sampler.h"
#include "worker/local_peer_group.h"
#include "worker/model_weights.h"
#include "worker/safetensors.h"

namespace tessera {
namespace {

// Sharded and whole-sequence runs differ only by fp32 reassociation.
constexpr double kShardedTolerance = 1e-5;
constexpr int kDecodeSteps = 8;

// Other shards' K/V, answered in process as a worker's AttendKv RPC would.
class InProcessRemoteKv : public RemoteKvAttention {
 public:
  InProcessRemoteKv(const ModelConfig& config, std::vector<const SequenceState*> others)
      : config_(config), others_(std::move(others)) {}
  absl::StatusOr<std::vector<AttentionPartial>> Attend(int64_t slot, absl::Span<const float> q, int64_t q_len,
                                                       int64_t q_position0) override {
    std::vector<AttentionPartial> parts;
    for (const SequenceState* s : others_) {
      absl::StatusOr<AttentionPartial> p = AttendStoredKv(config_, *s, slot, q, q_len, q_position0);
      if (!p.ok()) return p.status();
      parts.push_back(*std::move(p));
    }
    return parts;
  }

 private:
  const ModelConfig& config_;
  std::vector<const SequenceState*> others_;
};

struct ShardedRun {
  std::vector<float> prompt_logits;  // (L, vocab), shards concatenated
  std::vector<int32_t> tokens;
  std::vector<float> step_logits;    // (steps, vocab)
};

absl::StatusOr<ShardedRun> RunSharded(const ModelWeights& w, const std::vector<int32_t>& prompt,
                                      const std::vector<int64_t>& bounds, int steps) {
  const int size = static_cast<int>(bounds.size()) - 1;
  auto mailbox = std::make_shared<PeerMailbox>();
  std::vector<std::unique_ptr<LocalPeerGroup>> groups;
  std::vector<SequenceState> states;
  for (int r = 0; r < size; ++r) {
    groups.push_back(std::make_unique<LocalPeerGroup>(mailbox, "req", r, size, std::chrono::seconds(20)));
    states.push_back(SequenceState::ForShard(w.config, bounds[r]));
  }
  std::vector<absl::StatusOr<std::vector<float>>> logits(size, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      ShardContext ctx;
      ctx.peers = groups[r].get();
      ctx.shard_bounds = bounds;
      absl::Span<const int32_t> ids = absl::MakeConstSpan(prompt).subspan(bounds[r], bounds[r + 1] - bounds[r]);
      logits[r] = ForwardCpu(w, states[r], ids, LogitsRows::kAll, ctx);
    });
  }
  for (std::thread& t : threads) t.join();
  ShardedRun run;
  for (int r = 0; r < size; ++r) {
    if (!logits[r].ok()) return logits[r].status();
    run.prompt_logits.insert(run.prompt_logits.end(), logits[r]->begin(), logits[r]->end());
  }
  // Decode on the last shard; attention also reads the other shards' K/V.
  std::vector<const SequenceState*> others;
  for (int r = 0; r + 1 < size; ++r) others.push_back(&states[r]);
  InProcessRemoteKv remote(w.config, others);
  ShardContext decode_ctx;
  decode_ctx.remote_kv = size > 1 ? &remote : nullptr;
  const int64_t vocab = w.config.vocab_size;
  std::vector<float> last(run.prompt_logits.end() - vocab, run.prompt_logits.end());
  for (int step = 0; step < steps; ++step) {
    const int32_t token = GreedyToken(last);
    run.tokens.push_back(token);
    run.step_logits.insert(run.step_logits.end(), last.begin(), last.end());
    const int32_t next[1] = {token};
    absl::StatusOr<std::vector<float>> out = ForwardCpu(w, states.back(), next, LogitsRows::kLast, decode_ctx);
    if (!out.ok()) return out.status();
    last = *std::move(out);
  }
  return run;
}

struct Case {
  std::string fixture;
  int64_t length;
  std::vector<int64_t> bounds;  // empty: PlanShardBounds with `shards`
  int shards;
};

std::string CaseName(const testing::TestParamInfo<Case>& info) {
  std::string name = info.param.fixture + "_L" + std::to_string(info.param.length) + "_W" +
                     std::to_string(info.param.shards) + (info.param.bounds.empty() ? "" : "_custom");
  for (char& ch : name) ch = ch == '-' ? '_' : ch;
  return name;
}

class ContextParallelTest : public testing::TestWithParam<Case> {};

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

  std::vector<int64_t> bounds = c.bounds;
  if (bounds.empty()) {
    absl::StatusOr<std::vector<int64_t>> planned = PlanShardBounds(c.length, (*w)->config.mamba.chunk_size, c.shards);
    ASSERT_TRUE(planned.ok()) << planned.status();
    bounds = *planned;
  }
  ASSERT_EQ(static_cast<int>(bounds.size()), c.shards + 1);

  // Whole sequence in one state (matches transformers to 1e-6: see golden_test).
  SequenceState whole = SequenceState::ForModel((*w)->config);
  absl::StatusOr<std::vector<float>> expected = ForwardCpu(**w, whole, prompt, LogitsRows::kAll);
  ASSERT_TRUE(expected.ok()) << expected.status();
  std::vector<int32_t> expected_tokens;
  std::vector<float> expected_steps;
  const int64_t vocab = (*w)->config.vocab_size;
  std::vector<float> last(expected->end() - vocab, expected->end());
  for (int step = 0; step < kDecodeSteps; ++step) {
    expected_tokens.push_back(GreedyToken(last));
    expected_steps.insert(expected_steps.end(), last.begin(), last.end());
    const int32_t next[1] = {expected_tokens.back()};
    absl::StatusOr<std::vector<float>> out = ForwardCpu(**w, whole, next, LogitsRows::kLast);
    ASSERT_TRUE(out.ok()) << out.status();
    last = *std::move(out);
  }

  absl::StatusOr<ShardedRun> run = RunSharded(**w, prompt, bounds, kDecodeSteps);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_LE(RelativeL2(run->prompt_logits, *expected), kShardedTolerance);
  EXPECT_LE(RelativeL2(run->step_logits, expected_steps), kShardedTolerance);
  EXPECT_EQ(run->tokens, expected_tokens);
  // The prompt logits also match transformers' own (prefix rows of logits.200).
  absl::StatusOr<std::vector<float>> ref_logits = ReadFloat32(**ref, "logits.200");
  ASSERT_TRUE(ref_logits.ok());
  EXPECT_LE(RelativeL2(run->prompt_logits, absl::MakeConstSpan(*ref_logits).subspan(0, c.length * vocab)), 1e-4);
}

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  for (const char* fixture : {"mamba2-tiny", "bamba-tiny", "nemotronh-tiny"}) {
    for (int w = 1; w <= 4; ++w) cases.push_back({fixture, 200, {}, w});  // aligned to chunks of 16
    cases.push_back({fixture, 77, {}, 3});                                 // 77 not divisible by 3 or 16
    cases.push_back({fixture, 77, {0, 10, 12, 50, 77}, 4});                // unaligned, a 2-token shard < conv width
    cases.push_back({fixture, 6, {}, 4});                                  // more shards than chunks: 2,2,1,1
    cases.push_back({fixture, 3, {0, 1, 2, 3}, 3});                        // one token per shard
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ContextParallelTest, testing::ValuesIn(AllCases()), CaseName);

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
