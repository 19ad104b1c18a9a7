// What the batched-decode tests (decode_step_test, decode_scheduler_test)
// share: a fixture per Hugging Face family that loads it in fp32 on the
// backend the binary is built for (TESSERA_TEST_BACKEND: cpu, or cuda in the
// gpu-labelled twins, which skip without a device), and pieces of the
// family's 200-token reference prompt as the requests' prompts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/hf_tiny.h"
#include "tools/cli/engine_factory.h"
#include "worker/engine.h"

namespace tessera::testing {

class DecodeTestFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (std::string(TESSERA_TEST_BACKEND) == "cuda" && VisibleCudaDevices() == 0) GTEST_SKIP() << "no CUDA device";
    EngineOptions options;
    options.backend = TESSERA_TEST_BACKEND;
    options.precision = "fp32";
    absl::StatusOr<std::unique_ptr<Engine>> engine = LoadEngine(HfTinyDir(GetParam()), options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
    reference_ = HfTinyPrompt(GetParam(), 200);
    ASSERT_EQ(reference_.size(), 200u);
  }

  // Reference prompt tokens [begin, begin + tokens).
  std::vector<int32_t> PromptPiece(int64_t begin, int64_t tokens) const {
    return std::vector<int32_t>(reference_.begin() + begin, reference_.begin() + begin + tokens);
  }

  std::unique_ptr<Engine> engine_;
  std::vector<int32_t> reference_;
};

}  // namespace tessera::testing
