// Chunked prefill is exact: for every fixture, a prompt prefilled in pieces
// of sizes that do and do not divide the SSD chunk (16) and the prompt gives
// every logits row of the one-pass run (fp32, relative 1e-5) and the same
// greedy continuation; progress is monotonic over all pieces, an error from
// it stops the pass before the next piece, and a sharded pass is never cut.
// A prefill beside decode steps runs in the engine's budget pieces.
// Also: the piece size a worker chooses.
#include "worker/chunked_prefill.h"

#include <chrono>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/model_weights.h"
#include "tests/support/chunked_run.h"
#include "tests/support/hf_tiny.h"
#include "tests/support/sharded_run.h"
#include "tools/engine_greedy_runner.h"
#include "tools/reference_eval.h"
#include "worker/cpu/cpu_backend.h"
#include "worker/decode_turns.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

// Pieces and one pass differ only by fp32 reassociation.
constexpr double kPieceTolerance = 1e-5;
constexpr int kDecodeSteps = 8;
constexpr int64_t kPromptTokens = 200;

class ChunkedPrefillTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<ModelWeights>> weights = LoadModelWeights(testing::HfTinyDir(GetParam()));
    ASSERT_TRUE(weights.ok()) << weights.status();
    weights_ = *std::move(weights);
    absl::StatusOr<std::unique_ptr<Engine>> engine = MakeCpuEngineView(*weights_);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
    prompt_ = testing::HfTinyPrompt(GetParam(), kPromptTokens);
    absl::StatusOr<GreedyRun> whole = MakeEngineGreedyRunner(*engine_)(prompt_, kDecodeSteps);
    ASSERT_TRUE(whole.ok()) << whole.status();
    whole_ = *std::move(whole);
  }

  int64_t vocab() const { return engine_->config().vocab_size; }
  int64_t layers() const { return engine_->config().num_layers; }

  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Engine> engine_;
  std::vector<int32_t> prompt_;
  GreedyRun whole_;  // one pass
};

TEST_P(ChunkedPrefillTest, EveryRowAndTheGreedyContinuationMatchOnePass) {
  ASSERT_EQ(engine_->config().mamba.chunk_size, 16) << "the piece sizes below are chosen around chunks of 16";
  // 1: every token its own pass (the one-token update); 7: divides neither
  // 16 nor 200; 16: the SSD chunk; 64: divides 16 but not 200; 100: divides
  // 200 but not 16; 199: one token left over; 200: one piece.
  for (int64_t piece : {1, 7, 16, 64, 100, 199, 200}) {
    SCOPED_TRACE(::testing::Message() << GetParam() << " pieces of " << piece);
    absl::StatusOr<testing::PieceComparison> c =
        testing::CompareInPieces(*engine_, prompt_, whole_, piece, kDecodeSteps);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_LE(c->worst_row, kPieceTolerance);
    EXPECT_LE(c->steps, kPieceTolerance);
    EXPECT_TRUE(c->same_tokens);
  }
}

TEST_P(ChunkedPrefillTest, LastAndNoRowsComeFromTheLastPiece) {
  engine_->set_prefill_chunk_tokens(64);
  for (LogitsRows rows : {LogitsRows::kLast, LogitsRows::kNone}) {
    absl::StatusOr<std::unique_ptr<ShardState>> state = engine_->NewState(0, kPromptTokens);
    ASSERT_TRUE(state.ok()) << state.status();
    absl::StatusOr<std::vector<float>> logits = engine_->Forward(**state, prompt_, rows);
    ASSERT_TRUE(logits.ok()) << logits.status();
    EXPECT_EQ((*state)->num_tokens(), kPromptTokens);
    if (rows == LogitsRows::kNone) {
      EXPECT_TRUE(logits->empty());
    } else {
      ASSERT_EQ(static_cast<int64_t>(logits->size()), vocab());
      EXPECT_LE(RelativeL2(*logits, absl::MakeConstSpan(whole_.prompt_logits).last(vocab())), kPieceTolerance);
    }
  }
}

TEST_P(ChunkedPrefillTest, ProgressIsMonotonicOverEveryPiece) {
  engine_->set_prefill_chunk_tokens(64);  // 4 pieces: 64, 64, 64, 8
  std::vector<std::pair<int64_t, int64_t>> seen;
  ShardContext ctx;
  ctx.on_layer_done = [&](int64_t done, int64_t total) {
    seen.emplace_back(done, total);
    return absl::OkStatus();
  };
  absl::StatusOr<std::unique_ptr<ShardState>> state = engine_->NewState(0, kPromptTokens);
  ASSERT_TRUE(state.ok());
  ASSERT_TRUE(engine_->Forward(**state, prompt_, LogitsRows::kLast, ctx).ok());
  ASSERT_EQ(static_cast<int64_t>(seen.size()), 4 * layers());
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].first, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(seen[i].second, 4 * layers());
  }
}

TEST_P(ChunkedPrefillTest, AnErrorFromProgressStopsBeforeTheNextPiece) {
  engine_->set_prefill_chunk_tokens(64);
  // Cancelled as the first piece's last layer completes: no later layer runs.
  for (int64_t stop_at : {layers(), layers() + 1}) {
    int64_t calls = 0;
    ShardContext ctx;
    ctx.on_layer_done = [&](int64_t done, int64_t) {
      ++calls;
      return done >= stop_at ? absl::CancelledError("request cancelled") : absl::OkStatus();
    };
    absl::StatusOr<std::unique_ptr<ShardState>> state = engine_->NewState(0, kPromptTokens);
    ASSERT_TRUE(state.ok());
    const absl::Status status = engine_->Forward(**state, prompt_, LogitsRows::kLast, ctx).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
    EXPECT_EQ(calls, stop_at) << "no layer, and so no piece, after the error";
  }
}

// A shard of a context-parallel prefill runs in one pass whatever the piece
// size (a cut one would fail the shard-bounds check inside Forward).
TEST_P(ChunkedPrefillTest, ShardedPassesAreNotCut) {
  engine_->set_prefill_chunk_tokens(7);
  absl::StatusOr<GreedyRun> run = testing::RunShardedGreedy(*engine_, prompt_, {0, 96, 200}, kDecodeSteps);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_LE(RelativeL2(run->prompt_logits, whole_.prompt_logits), kPieceTolerance);
  EXPECT_EQ(run->tokens, whole_.tokens);
}

// Turns with decode (decode_turns.h): a prefill that starts right after a
// decode step runs in pieces of the budget (40 rounds down to 32: whole SSD
// chunks) and gives the one-pass logits; one that starts with nobody
// decoding runs in one pass. The piece count shows in progress' total.
TEST_P(ChunkedPrefillTest, APrefillBesideDecodeStepsRunsInBudgetPiecesAndMatchesOnePass) {
  engine_->set_prefill_budget_tokens(40);
  EXPECT_EQ(engine_->prefill_budget_tokens(), 32);
  absl::StatusOr<std::unique_ptr<ShardState>> decoding = engine_->NewState(0, 16);
  ASSERT_TRUE(decoding.ok());
  ASSERT_TRUE(engine_->Forward(**decoding, absl::MakeConstSpan(prompt_).first(5), LogitsRows::kNone).ok());
  auto prefill = [&](int64_t& total) -> absl::StatusOr<std::vector<float>> {
    ShardContext ctx;
    ctx.on_layer_done = [&](int64_t, int64_t layers_total) {
      total = layers_total;
      return absl::OkStatus();
    };
    absl::StatusOr<std::unique_ptr<ShardState>> state = engine_->NewState(0, kPromptTokens);
    if (!state.ok()) return state.status();
    return engine_->Forward(**state, prompt_, LogitsRows::kAll, ctx);
  };

  const DecodeRow row{decoding->get(), prompt_[5], nullptr};
  ASSERT_TRUE(engine_->DecodeStep(absl::MakeConstSpan(&row, 1)).ok());
  int64_t total = 0;
  absl::StatusOr<std::vector<float>> beside = prefill(total);  // within 50 ms of the step: decoding
  ASSERT_TRUE(beside.ok()) << beside.status();
  EXPECT_EQ(total, 7 * layers()) << "200 tokens in pieces of 32";
  ASSERT_EQ(beside->size(), whole_.prompt_logits.size());
  for (int64_t r = 0; r < kPromptTokens; ++r) {
    EXPECT_LE(RelativeL2(absl::MakeConstSpan(*beside).subspan(r * vocab(), vocab()),
                         absl::MakeConstSpan(whole_.prompt_logits).subspan(r * vocab(), vocab())),
              kPieceTolerance)
        << "row " << r;
  }

  std::this_thread::sleep_for(DecodeTurns::kActiveWindow + std::chrono::milliseconds(20));
  absl::StatusOr<std::vector<float>> alone = prefill(total);
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(total, layers()) << "nobody decoding: one pass";
}

INSTANTIATE_TEST_SUITE_P(HfTiny, ChunkedPrefillTest, testing::HfTinyFamilies(), testing::HfTinyTestName);

TEST(ChoosePrefillChunkTokensTest, DefaultsFromThePassLimitAndChecksARequest) {
  // The default: the pass limit, at most 65536, a multiple of the SSD chunk.
  EXPECT_EQ(*ChoosePrefillChunkTokens(0, 568851, 128), 65536);
  EXPECT_EQ(*ChoosePrefillChunkTokens(0, 40000, 128), 39936);
  EXPECT_EQ(*ChoosePrefillChunkTokens(0, 40000, 0), 40000) << "no SSD chunk: any multiple of 1";
  EXPECT_EQ(*ChoosePrefillChunkTokens(0, 0, 128), kUnlimitedDefaultPrefillChunkTokens) << "no limit known: the CPU";
  EXPECT_EQ(ChoosePrefillChunkTokens(0, 100, 128).status().code(), absl::StatusCode::kInvalidArgument);
  // A requested size is taken as given, up to the pass limit.
  EXPECT_EQ(*ChoosePrefillChunkTokens(7, 40000, 128), 7);
  EXPECT_EQ(*ChoosePrefillChunkTokens(100000, 0, 128), 100000);
  EXPECT_EQ(*ChoosePrefillChunkTokens(40000, 40000, 128), 40000);
  const absl::Status over = ChoosePrefillChunkTokens(40001, 40000, 128).status();
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(over.message(), HasSubstr("must be <= 40000"));
  EXPECT_THAT(over.message(), HasSubstr("Given: 40001"));
  const absl::Status negative = ChoosePrefillChunkTokens(-1, 40000, 128).status();
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.message(), HasSubstr("must be >= 0"));
}

}  // namespace
}  // namespace tessera
