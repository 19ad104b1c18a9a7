// The worker's own checks of a shard request, before any memory is taken:
// the shard plan, the token count, the vocabulary, and the served context
// (a worker re-checks the public limits; it does not trust its caller).
#include "gtest/gtest.h"
#include "model/model_config.h"
#include "worker/shard_runner.h"

namespace tessera {
namespace {

ModelConfig Config() {
  ModelConfig c;
  c.vocab_size = 100;
  return c;
}

ShardRequest Request(int64_t prompt, int32_t max_new_tokens) {
  ShardRequest r;
  r.request_id = "r";
  r.shards = {{"a:1", 0, prompt / 2}, {"b:1", prompt / 2, prompt}};
  r.rank = 1;
  r.token_ids.assign(prompt - prompt / 2, 5);
  r.max_new_tokens = max_new_tokens;
  return r;
}

TEST(ValidateShardRequestTest, TheServedContextIsRecheckedHere) {
  EXPECT_TRUE(ValidateShardRequest(Request(100, 20), Config(), /*max_context_tokens=*/120).ok());
  const absl::Status past = ValidateShardRequest(Request(100, 21), Config(), 120);
  EXPECT_EQ(past.code(), absl::StatusCode::kInvalidArgument) << past;
  EXPECT_NE(past.message().find("must be <= 120"), std::string::npos) << past;
  EXPECT_TRUE(ValidateShardRequest(Request(100, 1000000), Config(), /*max_context_tokens=*/0).ok());  // 0: no limit
}

TEST(ValidateShardRequestTest, PlanCountAndVocabulary) {
  ShardRequest gap = Request(10, 1);
  gap.shards[1].begin = 6;
  EXPECT_EQ(ValidateShardRequest(gap, Config()).code(), absl::StatusCode::kInvalidArgument);
  ShardRequest count = Request(10, 1);
  count.token_ids.pop_back();
  EXPECT_EQ(ValidateShardRequest(count, Config()).code(), absl::StatusCode::kInvalidArgument);
  ShardRequest vocab = Request(10, 1);
  vocab.token_ids[0] = 100;
  const absl::Status status = ValidateShardRequest(vocab, Config());
  EXPECT_NE(status.message().find("vocab size 100"), std::string::npos) << status;
  ShardRequest rank = Request(10, 1);
  rank.rank = 2;
  EXPECT_EQ(ValidateShardRequest(rank, Config()).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera
