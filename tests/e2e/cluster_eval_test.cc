// The product's correctness bar through real processes: for every fixture and
// W = 1..4 worker processes, the prompt logits and 24 greedy decode steps a
// client receives match transformers (relative L2 <= 1e-4, identical greedy
// tokens), including prompt lengths not divisible by W or the chunk size, a
// shard shorter than the conv width, and more workers than chunks; and the
// same with the coordinator dealing every prompt zigzag (W = 2..4), and with
// workers whose prefill pass (--max-pass-tokens 32) is shorter than their
// shards, so that the coordinator plans the prefill in rounds (W = 2, 4).
#include <tuple>

#include "tests/e2e/cluster_fixture.h"
#include "tools/engine_greedy_runner.h"
#include "tools/grpc_greedy_runner.h"
#include "tools/reference_eval.h"
#include "model/model_weights.h"

namespace tessera {
namespace {

constexpr double kTolerance = 1e-4;

// The prompt logits and greedy decode `served` gives at the lengths of the
// fixture's reference file (77 and 200) match transformers'.
void ExpectReferenceLengthsMatch(const GreedyRunner& served, const std::string& fixture) {
  absl::StatusOr<std::vector<LengthReport>> reports =
      EvaluateAgainstReference(FixtureDir(fixture) + "/reference.safetensors", served, kTolerance);
  ASSERT_TRUE(reports.ok()) << reports.status();
  for (const LengthReport& r : *reports) {
    EXPECT_TRUE(r.passed) << FormatReports(*reports, kTolerance);
  }
}

// (fixture, workers, the coordinator's --shard-layout)
class ClusterEvalTest : public testing::TestWithParam<std::tuple<std::string, int, std::string>> {};

TEST_P(ClusterEvalTest, MatchesReferenceThroughWorkerProcesses) {
  const auto& [fixture, workers, layout] = GetParam();
  std::unique_ptr<LocalCluster> cluster =
      StartCluster(fixture, workers, {"--min-shard-tokens", "1", "--shard-layout", layout});
  ASSERT_NE(cluster, nullptr);
  const GreedyRunner served = MakeGrpcGreedyRunner(cluster->address(), cluster->client_security());
  ExpectReferenceLengthsMatch(served, fixture);

  // Awkward lengths: prefix rows of logits.200 are the reference prompt
  // logits; the single-process engine gives the greedy continuation.
  auto weights = LoadModelWeights(FixtureDir(fixture));
  ASSERT_TRUE(weights.ok());
  const GreedyRunner local = MakeCpuGreedyRunner(**weights);
  auto file = SafetensorsFile::Open(FixtureDir(fixture) + "/reference.safetensors");
  const std::vector<float> ref_logits = *ReadFloat32(**file, "logits.200");
  const int64_t vocab = (*weights)->config.vocab_size;
  // 6: more workers than chunks; 18: a 2-token last shard when W=2 (< conv width 4); 4: one token per shard at W=4.
  for (int64_t length : {4, 6, 18, 33}) {
    if (length < workers) continue;
    SCOPED_TRACE("prompt length " + std::to_string(length));
    const std::vector<int32_t> prompt = ReferencePrompt(fixture, length);
    absl::StatusOr<GreedyRun> got = served(prompt, 8);
    ASSERT_TRUE(got.ok()) << got.status();
    absl::StatusOr<GreedyRun> want = local(prompt, 8);
    ASSERT_TRUE(want.ok()) << want.status();
    EXPECT_LE(RelativeL2(got->prompt_logits, absl::MakeConstSpan(ref_logits).subspan(0, length * vocab)), kTolerance);
    EXPECT_LE(RelativeL2(got->step_logits, want->step_logits), kTolerance);
    EXPECT_EQ(got->tokens, want->tokens);
  }
}

std::string ClusterCaseName(const testing::TestParamInfo<ClusterEvalTest::ParamType>& info) {
  std::string name = std::get<0>(info.param) + "_W" + std::to_string(std::get<1>(info.param));
  if (std::get<2>(info.param) != "contiguous") name += "_" + std::get<2>(info.param);
  for (char& ch : name) ch = ch == '-' ? '_' : ch;
  return name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ClusterEvalTest,
                         testing::Combine(testing::Values("mamba2-tiny", "bamba-tiny", "nemotronh-tiny",
                                                          "nemotronh-moe-tiny", "granitemoe-tiny"),
                                          testing::Values(1, 2, 3, 4), testing::Values("contiguous")),
                         ClusterCaseName);
INSTANTIATE_TEST_SUITE_P(Zigzag, ClusterEvalTest,
                         testing::Combine(testing::Values("mamba2-tiny", "bamba-tiny", "nemotronh-tiny",
                                                          "nemotronh-moe-tiny", "granitemoe-tiny"),
                                          testing::Values(2, 3, 4), testing::Values("zigzag")),
                         ClusterCaseName);

// (fixture, workers) with every worker's pass capped at 32 tokens: shards of
// the 200-token prompt (50 to 104 tokens) run in 2 to 4 rounds.
class RoundsClusterEvalTest : public testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(RoundsClusterEvalTest, APrefillInRoundsMatchesReferenceThroughWorkerProcesses) {
  const auto& [fixture, workers] = GetParam();
  std::unique_ptr<LocalCluster> cluster = StartCluster(
      fixture, workers, {"--min-shard-tokens", "1", "--shard-layout", "contiguous"}, {"--max-pass-tokens", "32"});
  ASSERT_NE(cluster, nullptr);
  // Split over every worker (not held by one, in pieces): the plan is in rounds.
  std::unique_ptr<v1::Tessera::Stub> client = ClientFor(*cluster);
  grpc::ClientContext context;
  v1::GenerateResponse response;
  const grpc::Status status = client->Generate(&context, GreedyRequest(ReferencePrompt(fixture, 200), 2), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.shards(), workers);
  ExpectReferenceLengthsMatch(MakeGrpcGreedyRunner(cluster->address(), cluster->client_security()), fixture);
}

INSTANTIATE_TEST_SUITE_P(Rounds, RoundsClusterEvalTest,
                         testing::Combine(testing::Values("mamba2-tiny", "bamba-tiny", "nemotronh-tiny",
                                                          "nemotronh-moe-tiny", "granitemoe-tiny"),
                                          testing::Values(2, 4)),
                         [](const testing::TestParamInfo<RoundsClusterEvalTest::ParamType>& info) {
                           std::string name =
                               std::get<0>(info.param) + "_W" + std::to_string(std::get<1>(info.param));
                           for (char& ch : name) ch = ch == '-' ? '_' : ch;
                           return name;
                         });

// The CLI path: `tessera eval --workers 2` exits 0 on a fixture.
TEST(EvalCommandClusterTest, EvalWithWorkersExitsZero) {
  const std::string cmd = std::string(TESSERA_BINARY) + " eval --workers 2 --model " + FixtureDir("bamba-tiny") +
                          " > " + testing::TempDir() + "/eval_workers.txt 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 0);
}

}  // namespace
}  // namespace tessera
