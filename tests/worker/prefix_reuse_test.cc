// Prefix reuse on one worker (worker/prefix_cache.h) through
// ShardRunner::RunShard, on every fixture, in fp32:
//  - a document prefix then three different questions, the prefix ending on
//    a block boundary, on an SSD chunk boundary inside a block, and inside an
//    SSD chunk: every answer (greedy tokens, their logits, the prompt logits
//    of the rows that ran) is the cold answer with the cache bypassed, within
//    1e-5 relative, and each question after the first resumes from the whole
//    blocks of the document;
//  - a salt shares nothing with another salt;
//  - concurrent requests sharing one cached prefix each get their cold answer;
//  - under a small budget the cache evicts (the counter moves, it stays under
//    the budget) and answers stay exact;
//  - the gauges: running memory back to 0 and the cache's bytes to what the
//    cache holds after the requests, both 0 after DropPrefixCache.
// Backend: TESSERA_TEST_BACKEND (cpu; cuda in the gpu-labelled twin, skipped
// without a device).
#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/worker/decode_test_fixture.h"
#include "worker/prefix_cache.h"
#include "worker/shard_runner.h"
#include "worker/worker_metrics.h"

namespace tessera {
namespace {

constexpr double kTolerance = 1e-5;  // relative L2, fp32
constexpr int64_t kBlock = 32;       // two SSD chunks of every fixture (chunk 16)
constexpr int32_t kNewTokens = 6;

class NoPeers final : public RequestTransports {
 public:
  absl::StatusOr<std::unique_ptr<PeerTransport>> ForPrefill(const RequestPeers&) override {
    return absl::FailedPreconditionError("no peers in this test");
  }
  absl::StatusOr<std::unique_ptr<PeerTransport>> ForDecode(const RequestPeers&) override {
    return absl::FailedPreconditionError("no peers in this test");
  }
  void BeginRequest(const std::string&, const std::string&) override {}
  void EndRequest(const std::string&, const std::string&) override {}
  int64_t PendingBytes() override { return 0; }
  std::vector<std::string> Offered() const override { return {"none"}; }
};

// What one request answered.
struct Answer {
  absl::Status status;
  int64_t cached = -1;
  std::vector<float> prompt_logits;  // (rows that ran, vocab)
  std::vector<int32_t> tokens;
  std::vector<float> token_logits;   // (tokens, vocab)
};

class Recorder final : public ShardEvents {
 public:
  explicit Recorder(Answer& answer) : a_(answer) {}
  absl::Status Progress(int64_t, int64_t, int64_t, int) override { return absl::OkStatus(); }
  absl::Status PromptLogits(absl::Span<const float> logits, int64_t) override {
    a_.prompt_logits.assign(logits.begin(), logits.end());
    return absl::OkStatus();
  }
  absl::Status Prefilled(int64_t, int64_t cached) override {
    a_.cached = cached;
    return absl::OkStatus();
  }
  absl::Status Token(int32_t token, absl::Span<const float> logits) override {
    a_.tokens.push_back(token);
    a_.token_logits.insert(a_.token_logits.end(), logits.begin(), logits.end());
    return absl::OkStatus();
  }
  absl::Status Finished(FinishReason, int32_t) override { return absl::OkStatus(); }

 private:
  Answer& a_;
};

class PrefixReuseTest : public testing::DecodeTestFixture {
 protected:
  Answer Run(ShardRunner& runner, const std::vector<int32_t>& prompt, const std::string& salt, bool bypass) {
    ShardRequest r;
    r.request_id = absl::StrCat("req-", next_id_++);
    r.secret = "0123456789abcdef0123456789abcdef";
    r.shards = {{"127.0.0.1:1", 0, static_cast<int64_t>(prompt.size())}};
    r.token_ids = prompt;
    r.return_logits = true;
    r.max_new_tokens = kNewTokens;
    r.cache_salt = salt;
    r.bypass_prefix_cache = bypass;
    Answer answer;
    Recorder events(answer);
    answer.status = runner.RunShard(r, events, [] { return false; });
    return answer;
  }

  // `warm` against `cold` (bypassed): the same tokens, their logits close,
  // and the prompt rows that ran equal to the cold run's last ones.
  void ExpectSameAnswer(const Answer& warm, const Answer& cold, const std::string& what) {
    ASSERT_TRUE(warm.status.ok()) << what << ": " << warm.status;
    ASSERT_TRUE(cold.status.ok()) << what << ": " << cold.status;
    EXPECT_EQ(cold.cached, 0) << what;
    EXPECT_EQ(warm.tokens, cold.tokens) << what;
    EXPECT_TRUE(kernel_test::CloseInRelativeL2(warm.token_logits, cold.token_logits, kTolerance)) << what;
    const int64_t vocab = engine_->config().vocab_size;
    ASSERT_GE(cold.prompt_logits.size(), static_cast<size_t>(warm.cached * vocab)) << what;
    const std::vector<float> tail(cold.prompt_logits.begin() + warm.cached * vocab, cold.prompt_logits.end());
    EXPECT_TRUE(kernel_test::CloseInRelativeL2(warm.prompt_logits, tail, kTolerance)) << what;
  }

  std::vector<int32_t> Concat(const std::vector<int32_t>& a, const std::vector<int32_t>& b) const {
    std::vector<int32_t> out = a;
    out.insert(out.end(), b.begin(), b.end());
    return out;
  }

  ShardRunnerOptions Options(WorkerMetrics* metrics, int64_t budget = int64_t{1} << 30) const {
    ShardRunnerOptions options;
    options.memory_budget_bytes = budget;
    options.prefix_block_tokens = kBlock;
    options.metrics = metrics;
    return options;
  }

  int next_id_ = 0;
};

TEST_P(PrefixReuseTest, ThreeQuestionsAfterADocumentAnswerAsColdRuns) {
  NoPeers peers;
  ShardRunner runner(*engine_, peers, Options(nullptr));
  // The document ends on a block boundary (64), on an SSD chunk boundary
  // inside a block (80) and inside an SSD chunk (72, 99).
  for (const int64_t doc_tokens : {64, 80, 72, 99}) {
    const std::vector<int32_t> doc = PromptPiece(0, doc_tokens);
    const std::string salt = absl::StrCat("doc-", doc_tokens);  // each document on its own
    const std::vector<std::vector<int32_t>> questions = {PromptPiece(150, 9), PromptPiece(170, 17),
                                                         PromptPiece(120, 30)};
    for (size_t q = 0; q < questions.size(); ++q) {
      const std::vector<int32_t> prompt = Concat(doc, questions[q]);
      const std::string what = absl::StrCat("document of ", doc_tokens, " tokens, question ", q);
      const Answer warm = Run(runner, prompt, salt, /*bypass=*/false);
      const Answer cold = Run(runner, prompt, salt, /*bypass=*/true);
      ExpectSameAnswer(warm, cold, what);
      EXPECT_EQ(warm.cached, q == 0 ? 0 : doc_tokens / kBlock * kBlock) << what;
    }
  }
}

TEST_P(PrefixReuseTest, TheSameQuestionAgainReusesAllButItsLastBlock) {
  NoPeers peers;
  ShardRunner runner(*engine_, peers, Options(nullptr));
  for (const int64_t tokens : {96, 101}) {  // a multiple of the block: the last token still runs
    const std::vector<int32_t> prompt = PromptPiece(0, tokens);
    const std::string salt = absl::StrCat("again-", tokens);
    const Answer first = Run(runner, prompt, salt, false);
    const Answer again = Run(runner, prompt, salt, false);
    ExpectSameAnswer(again, first, absl::StrCat(tokens, " tokens"));
    EXPECT_EQ(first.cached, 0);
    EXPECT_EQ(again.cached, (tokens - 1) / kBlock * kBlock);
  }
}

TEST_P(PrefixReuseTest, SaltsShareNothing) {
  NoPeers peers;
  ShardRunner runner(*engine_, peers, Options(nullptr));
  const std::vector<int32_t> prompt = PromptPiece(0, 100);
  ASSERT_TRUE(Run(runner, prompt, "tenant-a", false).status.ok());
  EXPECT_EQ(Run(runner, prompt, "tenant-b", false).cached, 0);
  EXPECT_EQ(Run(runner, prompt, "", false).cached, 0);
  EXPECT_EQ(Run(runner, prompt, "tenant-a", false).cached, 96);
  // A bypassing request neither reuses nor keeps.
  EXPECT_EQ(Run(runner, prompt, "tenant-c", true).cached, 0);
  EXPECT_EQ(Run(runner, prompt, "tenant-c", false).cached, 0);
}

TEST_P(PrefixReuseTest, ConcurrentRequestsSharingAPrefixAnswerAsColdRuns) {
  NoPeers peers;
  ShardRunner runner(*engine_, peers, Options(nullptr));
  const std::vector<int32_t> doc = PromptPiece(0, 90);
  ASSERT_TRUE(Run(runner, Concat(doc, PromptPiece(190, 5)), "shared", false).status.ok());
  const std::vector<std::vector<int32_t>> questions = {PromptPiece(150, 9), PromptPiece(170, 17),
                                                       PromptPiece(120, 30), PromptPiece(100, 3)};
  std::vector<Answer> warm(questions.size());
  std::vector<std::thread> threads;
  for (size_t q = 0; q < questions.size(); ++q) {
    threads.emplace_back([&, q] { warm[q] = Run(runner, Concat(doc, questions[q]), "shared", false); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t q = 0; q < questions.size(); ++q) {
    const Answer cold = Run(runner, Concat(doc, questions[q]), "shared", true);
    ExpectSameAnswer(warm[q], cold, absl::StrCat("question ", q));
    EXPECT_EQ(warm[q].cached, 64) << q;
  }
}

TEST_P(PrefixReuseTest, GaugesReturnToTheCachedLevelAndToZeroAfterTheDrop) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  NoPeers peers;
  ShardRunner runner(*engine_, peers, Options(&metrics));
  const std::vector<int32_t> doc = PromptPiece(0, 130);
  ASSERT_TRUE(Run(runner, doc, "gauges", false).status.ok());
  const int64_t cached_bytes = runner.prefix_cache().bytes();
  EXPECT_GT(cached_bytes, 0);
  EXPECT_EQ(runner.prefix_cache().blocks(), 4);  // 130 tokens: 4 whole blocks
  EXPECT_EQ(runner.memory_used_bytes(), 0);
  EXPECT_EQ(metrics.memory_used_bytes.Value(), 0);
  EXPECT_EQ(metrics.prefix_cache_bytes.Value(), static_cast<double>(cached_bytes));
  EXPECT_EQ(metrics.prefix_cache_blocks.Value(), 4);
  const Answer warm = Run(runner, Concat(PromptPiece(0, 100), PromptPiece(180, 10)), "gauges", false);
  ASSERT_TRUE(warm.status.ok()) << warm.status;
  EXPECT_EQ(warm.cached, 96);
  EXPECT_EQ(metrics.prefix_cache_hit_tokens.Value(), 96);
  EXPECT_EQ(metrics.memory_used_bytes.Value(), 0);
  EXPECT_EQ(metrics.prefix_cache_bytes.Value(), static_cast<double>(runner.prefix_cache().bytes()));
  const int64_t before_drop = runner.prefix_cache().bytes();
  EXPECT_EQ(runner.DropPrefixCache(), before_drop);
  EXPECT_EQ(runner.prefix_cache().bytes(), 0);
  EXPECT_EQ(runner.prefix_cache().blocks(), 0);
  EXPECT_EQ(metrics.prefix_cache_bytes.Value(), 0);
  EXPECT_EQ(metrics.prefix_cache_blocks.Value(), 0);
  EXPECT_EQ(metrics.memory_used_bytes.Value(), 0);
  EXPECT_EQ(Run(runner, doc, "gauges", false).cached, 0);  // nothing left to reuse
}

TEST_P(PrefixReuseTest, UnderASmallBudgetTheCacheEvictsAndAnswersStayExact) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  NoPeers peers;
  // Room for a request of 200 tokens + generation and 3.5 blocks beside it.
  const int64_t block_bytes = kBlock * engine_->KvBytesPerToken() + engine_->StateBytesPerRequest();
  const int64_t request_bytes = (200 + kNewTokens) * engine_->KvBytesPerToken() + engine_->StateBytesPerRequest();
  const int64_t budget = request_bytes + 3 * block_bytes + block_bytes / 2;
  ShardRunner runner(*engine_, peers, Options(&metrics, budget));
  for (int64_t begin : {0, 36, 72}) {  // three documents of 128 tokens: 4 blocks each, 12 in all
    const std::vector<int32_t> prompt = PromptPiece(begin, 128);
    const std::string what = absl::StrCat("document at ", begin);
    const Answer warm = Run(runner, prompt, "small", false);
    const Answer cold = Run(runner, prompt, "small", true);
    ExpectSameAnswer(warm, cold, what);
    EXPECT_LE(runner.prefix_cache().bytes(), budget) << what;
  }
  EXPECT_GT(metrics.prefix_cache_evictions.Value(), 0);
  EXPECT_LT(runner.prefix_cache().blocks(), 12);
  // The newest document's chain survived from its start (chains shorten from their ends).
  const Answer again = Run(runner, PromptPiece(72, 128), "small", false);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_GT(again.cached, 0);
  // A request that needs most of the budget takes it back from the cache.
  const Answer big = Run(runner, PromptPiece(0, 200), "other", true);
  ASSERT_TRUE(big.status.ok()) << big.status;
  EXPECT_LE(runner.prefix_cache().bytes(), budget - request_bytes);
  EXPECT_EQ(runner.memory_used_bytes(), 0);
}

INSTANTIATE_TEST_SUITE_P(Families, PrefixReuseTest, testing::HfTinyFamilies(), testing::HfTinyTestName);

}  // namespace
}  // namespace tessera
