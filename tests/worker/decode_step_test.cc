// The batched decode step (forward.h DecodeStep) against each request run
// alone, on every fixture: requests of different prompt lengths join and
// leave between steps (B joins at A's step 3, D at step 2, C only once A has
// finished), each row at its own position with its own states and K/V, and
// every greedy token must be the one the request gets alone, its logits
// within fp32 reassociation (BLAS blocks a product of N rows differently from
// one of a single row). The same with the prompts split over W = 2, 3, 4
// shards (threads over one engine, as tests/support/sharded_run.h runs them),
// where each row's attention also queries the K/V of its other shards. And a
// row whose split-KV query fails fails alone. On the GPU also in bf16: each
// request alone, fed the batch's tokens, within the bf16 bound of the batch.
// Backend: TESSERA_TEST_BACKEND (cpu; cuda in the gpu-labelled twin, skipped
// without a device).
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/shard_plan.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/support/hf_tiny.h"
#include "tests/worker/decode_test_fixture.h"
#include "tests/support/sharded_run.h"
#include "transport/in_process_transport.h"
#include "transport/mailbox.h"
#include "worker/engine.h"
#include "worker/sampler.h"

namespace tessera {
namespace {

constexpr double kBatchTolerance = 1e-5;  // relative L2 of each logits row, fp32

// A request of the script: its prompt (a piece of the fixture's reference
// prompt), its new tokens, and when it joins: at step `join_step`, or (-1)
// at the step after request `after` has finished.
struct ScriptedRequest {
  int64_t prompt_begin = 0;
  int64_t prompt_tokens = 0;
  int new_tokens = 0;
  int join_step = 0;
  int after = -1;
};

// A: 37 tokens from step 0; B: 5 tokens joins at A's step 3; D: 150 tokens
// at step 2; C: 64 tokens once A has finished.
const std::vector<ScriptedRequest>& Script() {
  static const auto* script = new std::vector<ScriptedRequest>{
      {0, 37, 7, 0, -1},     // A
      {40, 5, 12, 3, -1},    // B
      {100, 64, 6, -1, 0},   // C: after A
      {10, 150, 9, 2, -1},   // D
  };
  return *script;
}

// One request's memory over its shards, and how its decode reaches them.
struct ShardedRequest {
  std::vector<std::unique_ptr<ShardState>> states;  // (shards); the last decodes
  std::shared_ptr<Mailbox> mailbox = std::make_shared<Mailbox>();
  std::vector<std::unique_ptr<InProcessTransport>> transports;  // (shards)
  ShardContext decode_ctx;
  bool fail_queries = false;  // its split-KV answers fail (a peer gone)
};

// Greedy tokens and the logits row behind each.
struct Decoded {
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // (tokens, vocab)
  absl::Status status;
};

class DecodeStepTest : public testing::DecodeTestFixture {
 protected:
  std::vector<int32_t> PromptOf(const ScriptedRequest& r) const { return PromptPiece(r.prompt_begin, r.prompt_tokens); }

  // Cuts of `tokens` over `shards` as a coordinator plans them (every shard non-empty).
  std::vector<int64_t> BoundsOf(int64_t tokens, int shards) const {
    if (shards == 1) return {0, tokens};
    absl::StatusOr<std::vector<int64_t>> planned = PlanShardBounds(tokens, engine_->config().mamba.chunk_size, shards);
    EXPECT_TRUE(planned.ok()) << planned.status();
    return planned.ok() ? *planned : std::vector<int64_t>{0, tokens};
  }

  // The request's prompt prefilled over its shards (threads exchanging in
  // process); returns the last row's logits.
  absl::StatusOr<std::vector<float>> Prefill(const std::vector<int32_t>& prompt, const std::vector<int64_t>& bounds,
                                             int new_tokens, ShardedRequest& req) {
    const int size = static_cast<int>(bounds.size()) - 1;
    for (int r = 0; r < size; ++r) {
      absl::StatusOr<std::unique_ptr<ShardState>> s =
          engine_->NewState(bounds[r], bounds[r + 1] - bounds[r] + new_tokens);
      if (!s.ok()) return s.status();
      req.states.push_back(*std::move(s));
    }
    const InProcessKvAnswer answer = [this, &req](int holder, int64_t slot, absl::Span<const float> q, int64_t q_len,
                                                  int64_t q_position0) -> absl::StatusOr<AttentionPartial> {
      if (req.fail_queries) return absl::UnavailableError("peer gone");
      return engine_->AttendStoredKv(*req.states[holder], slot, q, q_len, q_position0);
    };
    for (int r = 0; r < size; ++r) {
      req.transports.push_back(
          std::make_unique<InProcessTransport>(req.mailbox, "req", r, size, std::chrono::seconds(60), answer));
    }
    std::vector<absl::StatusOr<std::vector<float>>> logits(size, absl::UnknownError("not run"));
    std::vector<std::thread> threads;
    for (int r = 0; r < size; ++r) {
      threads.emplace_back([&, r] {
        ShardContext ctx;
        ctx.peers = req.transports[r].get();
        ctx.pieces = ContiguousPieces(bounds);
        const absl::Span<const int32_t> shard =
            absl::MakeConstSpan(prompt).subspan(bounds[r], bounds[r + 1] - bounds[r]);
        logits[r] = engine_->Forward(*req.states[r], shard, LogitsRows::kLast, ctx);
      });
    }
    for (std::thread& t : threads) t.join();
    for (int r = 0; r < size; ++r) {
      if (!logits[r].ok()) return logits[r].status();
    }
    for (int r = 0; r + 1 < size; ++r) req.states[r]->DropMambaStates();  // as a worker does
    req.decode_ctx.peers = req.transports.back().get();
    req.decode_ctx.remote_kv = size > 1;
    return *std::move(logits.back());
  }

  // Runs the script over `shards` with batched steps; checks the joins and
  // leaves happened mid-stream. Every request's greedy tokens and logits.
  std::vector<Decoded> RunScript(int shards, const std::vector<bool>& fail_queries = {}) {
    const std::vector<ScriptedRequest>& script = Script();
    const size_t n = script.size();
    const int64_t vocab = engine_->config().vocab_size;
    std::vector<ShardedRequest> requests(n);
    std::vector<Decoded> out(n);
    std::vector<int> state(n, 0);  // 0 waiting, 1 decoding, 2 done
    size_t largest_batch = 0;
    for (int step = 0; std::count(state.begin(), state.end(), 2) < static_cast<long>(n); ++step) {
      if (step > 1000) {
        ADD_FAILURE() << "the script does not end";
        break;
      }
      for (size_t i = 0; i < n; ++i) {  // joins: prefill, then the first token from its logits
        const ScriptedRequest& r = script[i];
        const bool due = r.after >= 0 ? state[r.after] == 2 : step >= r.join_step;
        if (state[i] != 0 || !due) continue;
        if (i < fail_queries.size()) requests[i].fail_queries = fail_queries[i];
        const std::vector<int32_t> prompt = PromptOf(r);
        absl::StatusOr<std::vector<float>> logits = Prefill(prompt, BoundsOf(r.prompt_tokens, shards), r.new_tokens,
                                                            requests[i]);
        if (!logits.ok()) {
          ADD_FAILURE() << "prefill of request " << i << ": " << logits.status();
          return out;
        }
        out[i].tokens.push_back(GreedyToken(*logits));
        out[i].logits.insert(out[i].logits.end(), logits->begin(), logits->end());
        state[i] = static_cast<int>(out[i].tokens.size()) >= r.new_tokens ? 2 : 1;
      }
      std::vector<DecodeRow> rows;
      std::vector<size_t> who;
      for (size_t i = 0; i < n; ++i) {
        if (state[i] != 1) continue;
        rows.push_back({requests[i].states.back().get(), out[i].tokens.back(), &requests[i].decode_ctx});
        who.push_back(i);
      }
      if (rows.empty()) continue;
      largest_batch = std::max(largest_batch, rows.size());
      absl::StatusOr<DecodeStepResult> result = engine_->DecodeStep(rows);
      if (!result.ok()) {
        ADD_FAILURE() << "step " << step << ": " << result.status();
        return out;
      }
      for (size_t k = 0; k < who.size(); ++k) {
        Decoded& d = out[who[k]];
        if (!result->status[k].ok()) {
          d.status = result->status[k];
          state[who[k]] = 2;
          continue;
        }
        const std::vector<float> row(result->logits.begin() + k * vocab, result->logits.begin() + (k + 1) * vocab);
        d.tokens.push_back(GreedyToken(row));
        d.logits.insert(d.logits.end(), row.begin(), row.end());
        if (static_cast<int>(d.tokens.size()) >= script[who[k]].new_tokens) state[who[k]] = 2;
      }
    }
    EXPECT_GE(largest_batch, 3u) << "the script should batch three requests at once";
    return out;
  }

  // The script's requests one at a time (the engine's own decode), as tests/support runs them.
  void ExpectEachAsAlone(int shards, const std::vector<Decoded>& batched) {
    const std::vector<ScriptedRequest>& script = Script();
    const int64_t vocab = engine_->config().vocab_size;
    ASSERT_EQ(batched.size(), script.size());
    for (size_t i = 0; i < script.size(); ++i) {
      SCOPED_TRACE(::testing::Message() << GetParam() << " W=" << shards << " request " << i);
      const ScriptedRequest& r = script[i];
      const std::vector<int32_t> prompt = PromptOf(r);
      absl::StatusOr<GreedyRun> alone =
          testing::RunShardedGreedy(*engine_, prompt, BoundsOf(r.prompt_tokens, shards), r.new_tokens);
      ASSERT_TRUE(alone.ok()) << alone.status();
      ASSERT_TRUE(batched[i].status.ok()) << batched[i].status;
      EXPECT_EQ(batched[i].tokens, alone->tokens);
      ASSERT_EQ(batched[i].logits.size(), alone->step_logits.size());
      for (size_t t = 0; t < alone->tokens.size(); ++t) {
        const std::vector<float> got(batched[i].logits.begin() + t * vocab,
                                     batched[i].logits.begin() + (t + 1) * vocab);
        const std::vector<float> want(alone->step_logits.begin() + t * vocab,
                                      alone->step_logits.begin() + (t + 1) * vocab);
        EXPECT_TRUE(kernel_test::CloseInRelativeL2(got, want, kBatchTolerance)) << "token " << t;
      }
    }
  }

};

TEST_P(DecodeStepTest, EachRequestOfTheBatchGetsItsAloneTokens) {
  const std::vector<Decoded> batched = RunScript(/*shards=*/1);
  ExpectEachAsAlone(1, batched);
}

TEST_P(DecodeStepTest, EachRequestSplitOverWorkersGetsItsAloneTokens) {
  for (int shards : {2, 3, 4}) {
    const std::vector<Decoded> batched = RunScript(shards);
    ExpectEachAsAlone(shards, batched);
  }
}

// bf16 on the GPU: a batched step rounds products of N rows, alone of one,
// so the two differ by bf16 rounding, and greedy paths may part. Each request
// alone is fed the batch's own tokens (its prefill, then one-row steps), and
// all its logits rows must stay within the bf16 bound between two runs of one
// engine (HfTinyBf16Bounds: 2e-2, or 0.123 on nemotronh-moe-tiny, whose
// routers flip experts under bf16 rounding).
TEST_P(DecodeStepTest, Bf16BatchedStaysWithinTheBf16BoundOfEachRequestAlone) {
  if (std::string(TESSERA_TEST_BACKEND) != "cuda") GTEST_SKIP() << "bf16 is the CUDA backend's";
  EngineOptions options;
  options.backend = "cuda";
  options.precision = "bf16";
  absl::StatusOr<std::unique_ptr<Engine>> bf16 = LoadEngine(testing::HfTinyDir(GetParam()), options);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  engine_ = *std::move(bf16);
  const double bound = testing::HfTinyBf16Bounds(GetParam()).between_runs;
  const std::vector<Decoded> batched = RunScript(/*shards=*/1);
  const std::vector<ScriptedRequest>& script = Script();
  const int64_t vocab = engine_->config().vocab_size;
  ASSERT_EQ(batched.size(), script.size());
  for (size_t i = 0; i < script.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << GetParam() << " bf16 request " << i);
    ASSERT_TRUE(batched[i].status.ok()) << batched[i].status;
    const std::vector<int32_t>& tokens = batched[i].tokens;
    const std::vector<int32_t> prompt = PromptOf(script[i]);
    absl::StatusOr<std::unique_ptr<ShardState>> state =
        engine_->NewState(0, static_cast<int64_t>(prompt.size() + tokens.size()));
    ASSERT_TRUE(state.ok()) << state.status();
    absl::StatusOr<std::vector<float>> first = engine_->Forward(**state, prompt, LogitsRows::kLast);
    ASSERT_TRUE(first.ok()) << first.status();
    std::vector<float> alone = *std::move(first);  // (tokens, vocab)
    for (size_t t = 0; t + 1 < tokens.size(); ++t) {
      const DecodeRow row{state->get(), tokens[t], nullptr};
      absl::StatusOr<DecodeStepResult> step = engine_->DecodeStep(absl::MakeConstSpan(&row, 1));
      ASSERT_TRUE(step.ok()) << step.status();
      ASSERT_TRUE(step->status[0].ok()) << step->status[0];
      alone.insert(alone.end(), step->logits.begin(), step->logits.end());
    }
    ASSERT_EQ(alone.size(), batched[i].logits.size());
    ASSERT_EQ(alone.size(), tokens.size() * vocab);
    EXPECT_TRUE(kernel_test::CloseInRelativeL2(batched[i].logits, alone, bound));
  }
}

TEST_P(DecodeStepTest, ARowWhoseSplitKvQueryFailsFailsAlone) {
  if (engine_->config().CountBlocks(BlockKind::kAttention) == 0) GTEST_SKIP() << "no attention: no split-KV queries";
  const std::vector<Decoded> batched = RunScript(/*shards=*/2, /*fail_queries=*/{false, true, false, false});
  ASSERT_EQ(batched.size(), 4u);
  EXPECT_EQ(batched[1].status.code(), absl::StatusCode::kUnavailable) << batched[1].status;
  EXPECT_EQ(batched[1].tokens.size(), 1u);  // its first token came from its prefill
  const std::vector<ScriptedRequest>& script = Script();
  const int64_t vocab = engine_->config().vocab_size;
  for (size_t i : {0, 2, 3}) {
    SCOPED_TRACE(::testing::Message() << GetParam() << " request " << i);
    const ScriptedRequest& r = script[i];
    absl::StatusOr<GreedyRun> alone =
        testing::RunShardedGreedy(*engine_, PromptOf(r), BoundsOf(r.prompt_tokens, 2), r.new_tokens);
    ASSERT_TRUE(alone.ok()) << alone.status();
    ASSERT_TRUE(batched[i].status.ok()) << batched[i].status;
    EXPECT_EQ(batched[i].tokens, alone->tokens);
    EXPECT_TRUE(kernel_test::CloseInRelativeL2(batched[i].logits, alone->step_logits, kBatchTolerance));
    EXPECT_EQ(batched[i].logits.size(), alone->tokens.size() * vocab);
  }
}

TEST_P(DecodeStepTest, RowsMustHoldDistinctStates) {
  absl::StatusOr<std::unique_ptr<ShardState>> state = engine_->NewState(0, 8);
  ASSERT_TRUE(state.ok()) << state.status();
  const int32_t prompt[2] = {1, 2};
  ASSERT_TRUE(engine_->Forward(**state, prompt, LogitsRows::kNone).ok());
  const DecodeRow rows[2] = {{state->get(), 3, nullptr}, {state->get(), 4, nullptr}};
  EXPECT_EQ(engine_->DecodeStep(rows).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*state)->num_tokens(), 2);  // nothing ran
}

// On a GPU a step of local rows runs on the CUDA graph of its batch-size
// bucket (its first step there eagerly, the second captures the graph, later
// ones replay it); its logits must be the eager step's: bit for bit when the
// rows fill the bucket (the same ops on the same shapes), within fp32
// reassociation when padding rows fill it (cuBLAS may block a product of 4
// rows differently from one of 3). Every cache starts exactly full, so the
// first step moves every K/V cache: replays must follow the new pointers.
// On the CPU both runs are eager (no graphs) and must agree too.
TEST_P(DecodeStepTest, AGraphStepGivesTheEagerStepsLogits) {
  const int64_t vocab = engine_->config().vocab_size;
  const int64_t lengths[4] = {37, 5, 64, 23};
  for (int64_t n : {1, 3, 4}) {
    SCOPED_TRACE(::testing::Message() << GetParam() << " rows " << n);
    std::vector<std::unique_ptr<ShardState>> states[2];  // [graphs on, graphs off]
    std::vector<int32_t> tokens;                         // (n): the next token of each row
    for (int64_t r = 0; r < n; ++r) {
      const std::vector<int32_t> prompt = PromptPiece(r * 40, lengths[r]);
      for (auto& set : states) {
        absl::StatusOr<std::unique_ptr<ShardState>> state = engine_->NewState(0, lengths[r]);
        ASSERT_TRUE(state.ok()) << state.status();
        absl::StatusOr<std::vector<float>> logits = engine_->Forward(**state, prompt, LogitsRows::kLast);
        ASSERT_TRUE(logits.ok()) << logits.status();
        if (&set == &states[0]) tokens.push_back(GreedyToken(*logits));
        set.push_back(*std::move(state));
      }
    }
    for (int step = 0; step < 5; ++step) {
      absl::StatusOr<DecodeStepResult> results[2];
      for (int graphs : {0, 1}) {
        std::vector<DecodeRow> rows;
        for (int64_t r = 0; r < n; ++r) rows.push_back({states[graphs][r].get(), tokens[r], nullptr});
        engine_->set_decode_graphs(graphs == 0);
        results[graphs] = engine_->DecodeStep(rows);
        ASSERT_TRUE(results[graphs].ok()) << results[graphs].status();
      }
      engine_->set_decode_graphs(true);
      const std::vector<float>& on = results[0]->logits;
      const std::vector<float>& off = results[1]->logits;
      ASSERT_EQ(on.size(), static_cast<size_t>(n * vocab));
      ASSERT_EQ(off.size(), on.size());
      if (n != 3) {
        EXPECT_EQ(on, off) << "step " << step;
      } else {
        EXPECT_TRUE(kernel_test::CloseInRelativeL2(on, off, kBatchTolerance)) << "step " << step;
      }
      for (int64_t r = 0; r < n; ++r) {
        const absl::Span<const float> row = absl::MakeConstSpan(off).subspan(r * vocab, vocab);
        EXPECT_EQ(GreedyToken(absl::MakeConstSpan(on).subspan(r * vocab, vocab)), GreedyToken(row));
        tokens[r] = GreedyToken(row);
      }
    }
  }
  EXPECT_TRUE(engine_->decode_graph_capture_error().ok()) << engine_->decode_graph_capture_error();
  if (std::string(TESSERA_TEST_BACKEND) == "cuda") {
    EXPECT_EQ(engine_->decode_graphs_captured(), 2) << "buckets 1 and 4";
  }
}

INSTANTIATE_TEST_SUITE_P(HfTiny, DecodeStepTest, testing::HfTinyFamilies(), testing::HfTinyTestName);

}  // namespace
}  // namespace tessera
