// The correctness bar: for every tiny Hugging Face fixture and every prompt
// length in its reference file, the CPU engine's prompt logits and 24 cached
// greedy decode steps match transformers (float32) within relative L2 1e-4,
// and every greedy token is identical.
#include <string>

#include "gtest/gtest.h"
#include "tools/engine_greedy_runner.h"
#include "tools/reference_eval.h"
#include "model/model_weights.h"

namespace tessera {
namespace {

constexpr double kCpuTolerance = 1e-4;

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, PromptLogitsAndGreedyDecodeMatchTransformers) {
  const std::string dir = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/" + GetParam();
  absl::StatusOr<std::unique_ptr<ModelWeights>> weights = LoadModelWeights(dir);
  ASSERT_TRUE(weights.ok()) << weights.status();
  absl::StatusOr<std::vector<LengthReport>> reports =
      EvaluateAgainstReference(dir + "/reference.safetensors", MakeCpuGreedyRunner(**weights), kCpuTolerance);
  ASSERT_TRUE(reports.ok()) << reports.status();
  ASSERT_EQ(reports->size(), 2u) << "the fixtures hold lengths 77 and 200";
  for (const LengthReport& r : *reports) {
    SCOPED_TRACE("length " + std::to_string(r.length));
    EXPECT_LE(r.prompt_rel_l2, kCpuTolerance);
    EXPECT_LE(r.decode_rel_l2, kCpuTolerance);
    EXPECT_EQ(r.greedy_matched, r.greedy_total);
    EXPECT_EQ(r.greedy_total, 24);
  }
  std::cout << FormatReports(*reports, kCpuTolerance);
}

INSTANTIATE_TEST_SUITE_P(HfTiny, GoldenTest,
                         ::testing::Values("mamba2-tiny", "bamba-tiny", "nemotronh-tiny", "nemotronh-moe-tiny",
                                           "granitemoe-tiny"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name) ch = ch == '-' ? '_' : ch;
                           return name;
                         });

}  // namespace
}  // namespace tessera
