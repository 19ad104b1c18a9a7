// The layer loop (worker/forward.cc) on the CPU engine, for what the fixture
// evals do not see: the stacked projections the CUDA backend holds (q|k|v and
// SwiGLU's gate|up as one matrix each, one GEMM each) give the logits of the
// separate ones up to fp32 reassociation (BLAS blocks a wider product
// differently), prefill and decode, on every fixture; and progress
// reports every layer once, in order, ending at the model's layer count,
// while an error from it stops the pass.
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/model_weights.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/support/hf_tiny.h"
#include "worker/cpu/cpu_backend.h"
#include "worker/engine.h"

namespace tessera {
namespace {

constexpr int64_t kPromptTokens = 77;
constexpr double kReassociationTolerance = 1e-5;  // relative L2, fp32

class ForwardTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<ModelWeights>> weights = LoadModelWeights(testing::HfTinyDir(GetParam()));
    ASSERT_TRUE(weights.ok()) << weights.status();
    weights_ = *std::move(weights);
    for (int64_t t = 0; t < kPromptTokens; ++t) {
      prompt_.push_back(static_cast<int32_t>((t * 7919 + 13) % weights_->config.vocab_size));
    }
  }

  std::unique_ptr<Engine> MakeEngine(bool stack_projections) {
    absl::StatusOr<std::unique_ptr<Engine>> engine = MakeCpuEngineView(*weights_, stack_projections);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? *std::move(engine) : nullptr;
  }

  // Every prompt row's logits, then the last row's of two one-token steps.
  std::vector<float> PrefillAndDecode(Engine& engine) {
    absl::StatusOr<std::unique_ptr<ShardState>> state = engine.NewState(0, kPromptTokens + 2);
    EXPECT_TRUE(state.ok()) << state.status();
    if (!state.ok()) return {};
    absl::StatusOr<std::vector<float>> logits = engine.Forward(**state, prompt_, LogitsRows::kAll);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return {};
    std::vector<float> all = *logits;
    for (int32_t token : {3, 5}) {
      const int32_t next[1] = {token};
      logits = engine.Forward(**state, next, LogitsRows::kLast);
      EXPECT_TRUE(logits.ok()) << logits.status();
      if (!logits.ok()) return {};
      all.insert(all.end(), logits->begin(), logits->end());
    }
    return all;
  }

  std::unique_ptr<ModelWeights> weights_;
  std::vector<int32_t> prompt_;
};

TEST_P(ForwardTest, StackedProjectionsGiveTheSameLogits) {
  std::unique_ptr<Engine> separate = MakeEngine(/*stack_projections=*/false);
  std::unique_ptr<Engine> stacked = MakeEngine(/*stack_projections=*/true);
  ASSERT_NE(separate, nullptr);
  ASSERT_NE(stacked, nullptr);
  const std::vector<float> want = PrefillAndDecode(*separate);
  const std::vector<float> got = PrefillAndDecode(*stacked);
  ASSERT_FALSE(want.empty());
  EXPECT_TRUE(kernel_test::CloseInRelativeL2(got, want, kReassociationTolerance));
}

TEST_P(ForwardTest, ProgressReportsEveryLayerOnceInOrder) {
  std::unique_ptr<Engine> engine = MakeEngine(/*stack_projections=*/false);
  ASSERT_NE(engine, nullptr);
  const int64_t layers = engine->config().num_layers;
  absl::StatusOr<std::unique_ptr<ShardState>> state = engine->NewState(0, kPromptTokens);
  ASSERT_TRUE(state.ok()) << state.status();
  std::vector<int64_t> done;
  ShardContext ctx;
  ctx.on_layer_done = [&](int64_t layers_done, int64_t layers_total) {
    EXPECT_EQ(layers_total, layers);
    done.push_back(layers_done);
    return absl::OkStatus();
  };
  ASSERT_TRUE(engine->Forward(**state, prompt_, LogitsRows::kLast, ctx).ok());
  std::vector<int64_t> want;
  for (int64_t layer = 1; layer <= layers; ++layer) want.push_back(layer);
  EXPECT_EQ(done, want);
}

TEST_P(ForwardTest, AnErrorFromProgressStopsThePass) {
  std::unique_ptr<Engine> engine = MakeEngine(/*stack_projections=*/false);
  ASSERT_NE(engine, nullptr);
  absl::StatusOr<std::unique_ptr<ShardState>> state = engine->NewState(0, kPromptTokens);
  ASSERT_TRUE(state.ok()) << state.status();
  int64_t calls = 0;
  ShardContext ctx;
  ctx.on_layer_done = [&](int64_t, int64_t) {
    ++calls;
    return absl::CancelledError("request cancelled");
  };
  const absl::StatusOr<std::vector<float>> logits = engine->Forward(**state, prompt_, LogitsRows::kLast, ctx);
  EXPECT_EQ(logits.status().code(), absl::StatusCode::kCancelled) << logits.status();
  EXPECT_EQ(calls, 1);
}

// A warm-up (a worker's, before it serves) leaves nothing behind: the next
// request's logits are those of an engine that never warmed up.
TEST_P(ForwardTest, WarmUpChangesNothingAfter) {
  std::unique_ptr<Engine> cold = MakeEngine(/*stack_projections=*/false);
  std::unique_ptr<Engine> warm = MakeEngine(/*stack_projections=*/false);
  ASSERT_NE(cold, nullptr);
  ASSERT_NE(warm, nullptr);
  ASSERT_TRUE(warm->WarmUp(40).ok());
  EXPECT_EQ(warm->WarmUp(0).code(), absl::StatusCode::kInvalidArgument);
  const std::vector<float> want = PrefillAndDecode(*cold);
  const std::vector<float> got = PrefillAndDecode(*warm);
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(got, want);
}

INSTANTIATE_TEST_SUITE_P(HfTiny, ForwardTest, testing::HfTinyFamilies(), testing::HfTinyTestName);

}  // namespace
}  // namespace tessera
