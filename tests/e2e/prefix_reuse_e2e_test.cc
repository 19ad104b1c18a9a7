// Prefix reuse through real processes (tessera local, --prefix-block-tokens
// 32 on the workers), W = 1-4, on mamba2-tiny, nemotronh-tiny and bamba-tiny:
// a document then three different questions, the document ending on a block
// boundary and inside an SSD chunk. Every answer (greedy tokens, their
// logits, the prompt logits of the rows that ran) is the answer with the
// cache bypassed, within 1e-5 relative; every question after the first
// reports the document's whole blocks in Usage.cached_prompt_tokens (the
// coordinator sends it to the worker that holds them); DropPrefixCache
// reaches every worker and leaves nothing to reuse. With the documents split
// over the workers, later questions resume on the workers that hold the
// document's spans, with the same exactness; spans the workers dropped behind
// the coordinator's back cost a fresh prefill, not a wrong answer.
#include <algorithm>
#include <chrono>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tessera/v1/worker.grpc.pb.h"
#include "tests/e2e/cluster_fixture.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

constexpr double kTolerance = 1e-5;  // relative L2, fp32
constexpr int64_t kBlock = 32;

grpc::Status Generate(v1::Tessera::Stub& stub, const v1::GenerateRequest& request, v1::GenerateResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return stub.Generate(&context, request, response);
}

// `n` values from `from` (a response's logits), for kernel_test::CloseInRelativeL2.
std::vector<float> Values(const float* from, size_t n) { return std::vector<float>(from, from + n); }

// `warm` against `cold` (the cache bypassed).
void ExpectSameAnswer(const v1::GenerateResponse& warm, const v1::GenerateResponse& cold, const std::string& what) {
  EXPECT_EQ(cold.usage().cached_prompt_tokens(), 0) << what;
  ASSERT_EQ(std::vector<int32_t>(warm.token_ids().begin(), warm.token_ids().end()),
            std::vector<int32_t>(cold.token_ids().begin(), cold.token_ids().end()))
      << what;
  ASSERT_EQ(warm.token_logits().values_size(), cold.token_logits().values_size()) << what;
  const size_t steps = static_cast<size_t>(warm.token_logits().values_size());
  EXPECT_TRUE(kernel_test::CloseInRelativeL2(Values(warm.token_logits().values().data(), steps),
                                             Values(cold.token_logits().values().data(), steps), kTolerance))
      << what;
  const int64_t vocab = cold.prompt_logits().vocab_size();
  const int64_t skipped = warm.usage().cached_prompt_tokens();
  ASSERT_EQ(warm.prompt_logits().rows(), cold.prompt_logits().rows() - skipped) << what;
  const size_t prompt_values = static_cast<size_t>(warm.prompt_logits().values_size());
  EXPECT_TRUE(kernel_test::CloseInRelativeL2(Values(warm.prompt_logits().values().data(), prompt_values),
                                             Values(cold.prompt_logits().values().data() + skipped * vocab,
                                                    prompt_values),
                                             kTolerance))
      << what;
}

// `request` through the cache (`warm`), then with the cache bypassed
// (`cold`): the answers must be the same.
void AskWarmThenCold(v1::Tessera::Stub& stub, v1::GenerateRequest request, const std::string& what,
                     v1::GenerateResponse* warm, v1::GenerateResponse* cold) {
  ASSERT_TRUE(Generate(stub, request, warm).ok()) << what;
  request.set_bypass_prefix_cache(true);
  ASSERT_TRUE(Generate(stub, request, cold).ok()) << what;
  ExpectSameAnswer(*warm, *cold, what);
}

// The first `doc_tokens` of `reference` and then reference[begin, begin + tokens).
std::vector<int32_t> DocumentAndQuestion(const std::vector<int32_t>& reference, int64_t doc_tokens, int begin,
                                         int tokens) {
  std::vector<int32_t> prompt(reference.begin(), reference.begin() + doc_tokens);
  prompt.insert(prompt.end(), reference.begin() + begin, reference.begin() + begin + tokens);
  return prompt;
}

class PrefixReuseE2eTest : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(PrefixReuseE2eTest, QuestionsAfterADocumentAnswerAsColdRuns) {
  const auto& [fixture, workers] = GetParam();
  std::unique_ptr<LocalCluster> cluster =
      StartCluster(fixture, workers, {}, {"--prefix-block-tokens", absl::StrCat(kBlock)});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  const std::vector<int32_t> reference = ReferencePrompt(fixture, 200);
  for (const int64_t doc_tokens : {96, 77}) {  // on a block boundary; inside an SSD chunk (16)
    const std::vector<std::pair<int, int>> questions = {{150, 9}, {170, 17}, {120, 30}};  // (begin, tokens)
    for (size_t q = 0; q < questions.size(); ++q) {
      v1::GenerateRequest request =
          GreedyRequest(DocumentAndQuestion(reference, doc_tokens, questions[q].first, questions[q].second), 5);
      request.set_return_logits(true);
      request.set_cache_salt(absl::StrCat("doc-", doc_tokens));
      const std::string what = absl::StrCat(fixture, " W=", workers, ", document of ", doc_tokens, ", question ", q);
      v1::GenerateResponse warm, cold;
      AskWarmThenCold(*stub, request, what, &warm, &cold);
      if (HasFatalFailure()) return;
      EXPECT_EQ(warm.usage().cached_prompt_tokens(), q == 0 ? 0 : doc_tokens / kBlock * kBlock) << what;
    }
  }
  grpc::ClientContext context;
  v1::DropPrefixCacheResponse dropped;
  ASSERT_TRUE(stub->DropPrefixCache(&context, v1::DropPrefixCacheRequest(), &dropped).ok());
  EXPECT_EQ(dropped.workers(), workers);
  EXPECT_GT(dropped.freed_bytes(), 0);
  v1::GenerateRequest again = GreedyRequest(std::vector<int32_t>(reference.begin(), reference.begin() + 120), 2);
  again.set_cache_salt("doc-96");
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(*stub, again, &response).ok());
  EXPECT_EQ(response.usage().cached_prompt_tokens(), 0);
}

// Documents split over the workers (--min-shard-tokens 32): every shard's
// worker keeps its span, and a later question resumes on them (the last kept
// span's worker prefills the rest with split-KV attention over the others).
TEST_P(PrefixReuseE2eTest, ShardedDocumentsResumeOnTheirWorkers) {
  const auto& [fixture, workers] = GetParam();
  std::unique_ptr<LocalCluster> cluster = StartCluster(fixture, workers, {"--min-shard-tokens", "32"},
                                                       {"--prefix-block-tokens", absl::StrCat(kBlock)});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  const std::vector<int32_t> reference = ReferencePrompt(fixture, 200);
  for (const int64_t doc_tokens : {128, 77}) {
    const std::vector<std::pair<int, int>> questions = {{150, 40}, {170, 17}, {130, 30}};  // (begin, tokens)
    for (size_t q = 0; q < questions.size(); ++q) {
      const std::vector<int32_t> prompt =
          DocumentAndQuestion(reference, doc_tokens, questions[q].first, questions[q].second);
      v1::GenerateRequest request = GreedyRequest(prompt, 5);
      request.set_return_logits(true);
      request.set_cache_salt(absl::StrCat("sharded-", doc_tokens));
      const std::string what = absl::StrCat(fixture, " W=", workers, ", document of ", doc_tokens, ", question ", q);
      v1::GenerateResponse warm, cold;
      AskWarmThenCold(*stub, request, what, &warm, &cold);
      if (HasFatalFailure()) return;
      if (q == 0) {
        EXPECT_EQ(warm.usage().cached_prompt_tokens(), 0) << what;
      } else {  // a whole number of blocks of the document, on the first question's workers
        EXPECT_GT(warm.usage().cached_prompt_tokens(), 0) << what;
        EXPECT_LE(warm.usage().cached_prompt_tokens(), doc_tokens) << what;
        EXPECT_EQ(warm.usage().cached_prompt_tokens() % kBlock, 0) << what;
      }
      if (workers > 1) EXPECT_EQ(cold.shards(), std::min<int>(workers, prompt.size() / 32)) << what;
    }
  }
}

// The workers drop their caches behind the coordinator's back: its hint now
// names spans no one holds, the resumed attempt fails before any token, and
// the request is planned again from scratch, with the cold answer.
TEST_P(PrefixReuseE2eTest, ASpanEvictedBehindTheCoordinatorsBackIsPrefilledAgain) {
  const auto& [fixture, workers] = GetParam();
  if (workers == 1) GTEST_SKIP() << "spans are what a split prefill keeps";
  std::unique_ptr<LocalCluster> cluster = StartCluster(fixture, workers, {"--min-shard-tokens", "32"},
                                                       {"--prefix-block-tokens", absl::StrCat(kBlock)});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  const std::vector<int32_t> reference = ReferencePrompt(fixture, 200);
  v1::GenerateRequest first = GreedyRequest(DocumentAndQuestion(reference, 128, 150, 40), 3);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(*stub, first, &response).ok());
  grpc::ClientContext info_context;
  v1::ServerInfo info;
  ASSERT_TRUE(stub->GetServerInfo(&info_context, v1::GetServerInfoRequest(), &info).ok());
  int64_t freed = 0;
  for (const v1::WorkerInfo& worker : info.workers()) {
    grpc::ClientContext context;
    v1::DropPrefixCacheResponse dropped;
    ASSERT_TRUE(v1::Worker::NewStub(MakeChannel(worker.address()))
                    ->DropPrefixCache(&context, v1::DropPrefixCacheRequest(), &dropped)
                    .ok());
    freed += dropped.freed_bytes();
  }
  EXPECT_GT(freed, 0);
  v1::GenerateRequest second = GreedyRequest(DocumentAndQuestion(reference, 128, 170, 17), 3);
  second.set_return_logits(true);
  v1::GenerateResponse warm, cold;
  AskWarmThenCold(*stub, second, absl::StrCat(fixture, " W=", workers), &warm, &cold);
  EXPECT_EQ(warm.usage().cached_prompt_tokens(), 0);
}

INSTANTIATE_TEST_SUITE_P(FixturesAndWorkers, PrefixReuseE2eTest,
                         ::testing::Combine(::testing::Values("mamba2-tiny", "nemotronh-tiny", "bamba-tiny"),
                                            ::testing::Values(1, 2, 3, 4)),
                         [](const auto& info) {
                           std::string name = std::get<0>(info.param);
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return absl::StrCat(name, "_W", std::get<1>(info.param));
                         });

}  // namespace
}  // namespace tessera
