// Chunked prefill through real processes: `tessera local
// --prefill-chunk-tokens N` passes N to its workers, which say so at start; a
// one-worker cluster prefilling in pieces that divide neither the SSD chunk
// nor the prompt gives the transformers references (prompt logits and
// greedy steps), and so does a two-worker cluster with the same flag (its
// shards run in one pass each); a bad value exits 2 with the reason.
#include <stdio.h>
#include <sys/wait.h>

#include "absl/strings/str_cat.h"
#include "tests/e2e/cluster_fixture.h"
#include "tools/grpc_greedy_runner.h"
#include "tools/reference_eval.h"

namespace tessera {
namespace {

constexpr double kTolerance = 1e-4;

std::string ReadFile(const std::string& path) {
  std::string text;
  FILE* file = fopen(path.c_str(), "r");
  if (file == nullptr) return text;
  char buffer[4096];
  size_t got;
  while ((got = fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, got);
  fclose(file);
  return text;
}

// Runs `args` of the tessera binary with stderr captured: (exit code, output).
std::pair<int, std::string> RunTessera(const std::string& args) {
  FILE* pipe = popen((std::string(TESSERA_BINARY) + " " + args + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string out;
  char buffer[4096];
  size_t got;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, got);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class PrefillPiecesTest : public testing::TestWithParam<int> {};

TEST_P(PrefillPiecesTest, MatchesReferenceInPiecesOfSevenTokens) {
  const int workers = GetParam();
  const std::string log_path = ClusterLogPath("bamba-tiny");
  std::remove(log_path.c_str());
  std::unique_ptr<LocalCluster> cluster =
      StartCluster("bamba-tiny", workers, {"--min-shard-tokens", "1"}, {"--prefill-chunk-tokens", "7"});
  ASSERT_NE(cluster, nullptr);
  // Lengths 77 and 200 of the reference file, prompt logits of every piece.
  absl::StatusOr<std::vector<LengthReport>> reports =
      EvaluateAgainstReference(FixtureDir("bamba-tiny") + "/reference.safetensors",
                               MakeGrpcGreedyRunner(cluster->address(), cluster->client_security()), kTolerance);
  ASSERT_TRUE(reports.ok()) << reports.status();
  for (const LengthReport& r : *reports) EXPECT_TRUE(r.passed) << FormatReports(*reports, kTolerance);
  cluster.reset();
  EXPECT_NE(ReadFile(log_path).find("prefill in pieces of 7 tokens"), std::string::npos) << ReadFile(log_path);
}

INSTANTIATE_TEST_SUITE_P(Workers, PrefillPiecesTest, testing::Values(1, 2),
                         [](const auto& info) { return "W" + std::to_string(info.param); });

TEST(PrefillPiecesFlagTest, BadValuesExitTwoWithTheReason) {
  const std::string model = FixtureDir("bamba-tiny");
  for (const std::string& command : {"worker --insecure --model " + model, "local --workers 1 --model " + model}) {
    const auto [negative_code, negative] = RunTessera(command + " --prefill-chunk-tokens -1");
    EXPECT_EQ(negative_code, 2) << command << "\n" << negative;
    EXPECT_NE(negative.find("--prefill-chunk-tokens must be >= 0"), std::string::npos) << negative;
    const auto [word_code, word] = RunTessera(command + " --prefill-chunk-tokens lots");
    EXPECT_EQ(word_code, 2) << command << "\n" << word;
    EXPECT_NE(word.find("prefill-chunk-tokens"), std::string::npos) << word;
  }
  const auto [help_code, help] = RunTessera("worker --help");
  EXPECT_EQ(help_code, 0);
  EXPECT_NE(help.find("--prefill-chunk-tokens"), std::string::npos) << help;
}

}  // namespace
}  // namespace tessera
