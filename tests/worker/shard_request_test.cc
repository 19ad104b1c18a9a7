// The worker's own checks of a shard request, before any memory is taken:
// the shard plan, the token count, the vocabulary, and the served context
// (a worker re-checks the public limits; it does not trust its caller), and
// every number a forged RunShard could carry: max_new_tokens past the
// worker's limit, NaN or infinite sampling values, reserved bytes past the
// budget, a negative timeout, absurd positions, a missing secret.
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/striped_rounds.h"
#include "gtest/gtest.h"
#include "model/model_config.h"
#include "worker/network_limits.h"
#include "worker/shard_validation.h"

namespace tessera {
namespace {

ModelConfig Config() {
  ModelConfig c;
  c.vocab_size = 100;
  return c;
}

ShardLimits Options(int64_t max_context_tokens = 0) {
  ShardLimits options;
  options.memory_budget_bytes = int64_t{1} << 30;
  options.max_context_tokens = max_context_tokens;
  options.max_new_tokens_limit = 4096;
  return options;
}

ShardRequest Request(int64_t prompt, int32_t max_new_tokens) {
  ShardRequest r;
  r.request_id = "r";
  r.secret = "0123456789abcdef";
  r.shards = {{"a:1", 0, prompt / 2}, {"b:1", prompt / 2, prompt}};
  r.rank = 1;
  r.token_ids.assign(prompt - prompt / 2, 5);
  r.max_new_tokens = max_new_tokens;
  return r;
}

absl::StatusCode Code(const ShardRequest& r, const ShardLimits& options = Options()) {
  return ValidateShardRequest(r, Config(), options).code();
}

TEST(ValidateShardRequestTest, TheServedContextIsRecheckedHere) {
  EXPECT_TRUE(ValidateShardRequest(Request(100, 20), Config(), Options(120)).ok());
  const absl::Status past = ValidateShardRequest(Request(100, 21), Config(), Options(120));
  EXPECT_EQ(past.code(), absl::StatusCode::kInvalidArgument) << past;
  EXPECT_NE(past.message().find("must be <= 120"), std::string::npos) << past;
  EXPECT_TRUE(ValidateShardRequest(Request(100, 4096), Config(), Options(0)).ok());  // 0: no context limit
}

TEST(ValidateShardRequestTest, PlanCountAndVocabulary) {
  ShardRequest gap = Request(10, 1);
  gap.shards[1].begin = 6;
  EXPECT_EQ(Code(gap), absl::StatusCode::kInvalidArgument);
  ShardRequest count = Request(10, 1);
  count.token_ids.pop_back();
  EXPECT_EQ(Code(count), absl::StatusCode::kInvalidArgument);
  ShardRequest vocab = Request(10, 1);
  vocab.token_ids[0] = 100;
  const absl::Status status = ValidateShardRequest(vocab, Config(), Options());
  EXPECT_NE(status.message().find("vocab size 100"), std::string::npos) << status;
  ShardRequest rank = Request(10, 1);
  rank.rank = 2;
  EXPECT_EQ(Code(rank), absl::StatusCode::kInvalidArgument);
}

// Finding 5: a direct RunShard asked for 10.8K tokens against a 4,096 limit
// and was served; NaN temperature was accepted.
// A zigzag plan of 2 shards over 4 pieces [0,3) [3,5) [5,8) [8,10): shard 0
// holds pieces 1 and 2, shard 1 (the last) pieces 0 and 3.
ShardRequest Zigzag() {
  ShardRequest r = Request(10, 1);
  r.shards = {{"a:1", 3, 5, 5, 8}, {"b:1", 0, 3, 8, 10}};
  r.token_ids.assign(5, 5);
  return r;
}

TEST(ValidateShardRequestTest, AZigzagPlanIsCheckedPieceByPiece) {
  EXPECT_TRUE(ValidateShardRequest(Zigzag(), Config(), Options(11)).ok());
  const std::vector<ShardPiece> pieces = PlanPieces(Zigzag());
  ASSERT_EQ(pieces.size(), 4u);
  const std::vector<int> ranks = {pieces[0].rank, pieces[1].rank, pieces[2].rank, pieces[3].rank};
  EXPECT_EQ(ranks, (std::vector<int>{1, 0, 0, 1}));
  EXPECT_EQ(pieces[3].end, 10);
  // The prompt ends at the last piece: 10 + 1 new token past a context of 10.
  EXPECT_EQ(ValidateShardRequest(Zigzag(), Config(), Options(10)).code(), absl::StatusCode::kInvalidArgument);

  ShardRequest mixed = Zigzag();
  mixed.shards[0].late_begin = mixed.shards[0].late_end = 0;  // one shard with a late piece, one without
  const absl::Status mixed_status = ValidateShardRequest(mixed, Config(), Options());
  EXPECT_EQ(mixed_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mixed_status.message().find("every shard two (zigzag)"), std::string::npos) << mixed_status;
  ShardRequest gap = Zigzag();
  gap.shards[0].late_begin = 6;  // piece 2 no longer starts where piece 1 ends
  gap.token_ids.assign(4, 5);
  const absl::Status gap_status = ValidateShardRequest(gap, Config(), Options());
  EXPECT_NE(gap_status.message().find("zigzag plan's pieces"), std::string::npos) << gap_status;
  ShardRequest count = Zigzag();
  count.token_ids.assign(3, 5);  // only the early piece's tokens
  EXPECT_EQ(Code(count), absl::StatusCode::kInvalidArgument);
  ShardRequest prefix = Zigzag();
  prefix.rank = 0;
  prefix.max_new_tokens = 0;
  prefix.prefix_token_ids.assign(3, 1);  // a zigzag shard keeps no prefix
  EXPECT_EQ(Code(prefix), absl::StatusCode::kInvalidArgument);
  ShardRequest bad_id = Zigzag();
  bad_id.token_ids[4] = 100;  // the late piece's last token, at position 9
  const absl::Status id_status = ValidateShardRequest(bad_id, Config(), Options());
  EXPECT_NE(id_status.message().find("position 9"), std::string::npos) << id_status;
}

// A plan in rounds: shares of 5 and 5 over 2 rounds, shard 1 (the last)
// holding [2, 4) and [7, 10) (common/striped_rounds.h).
ShardRequest Rounds() {
  ShardRequest r = Request(10, 1);
  r.prefill_rounds = 2;
  return r;
}

TEST(ValidateShardRequestTest, APlanInRoundsIsDealtStripedAndCheckedWhole) {
  EXPECT_TRUE(ValidateShardRequest(Rounds(), Config(), Options(11)).ok());
  std::string pieces;  // "[begin, end) rank/round" each
  for (const ShardPiece& p : PlanPieces(Rounds())) {
    absl::StrAppend(&pieces, "[", p.begin, ", ", p.end, ") ", p.rank, "/", p.round, " ");
  }
  EXPECT_EQ(pieces, "[0, 2) 0/0 [2, 4) 1/0 [4, 7) 0/1 [7, 10) 1/1 ");

  auto refused = [](const ShardRequest& r, const std::string& why) {
    const absl::Status status = ValidateShardRequest(r, Config(), Options());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << why;
    EXPECT_NE(status.message().find(why), std::string::npos) << status;
  };
  for (const int bad : {0, -1, static_cast<int>(kMaxPrefillRounds) + 1}) {
    ShardRequest r = Rounds();
    r.prefill_rounds = bad;
    refused(r, absl::StrCat("prefill_rounds must be in [1, ", kMaxPrefillRounds, "]"));
  }
  ShardRequest too_many = Rounds();
  too_many.prefill_rounds = 6;  // more rounds than a share of 5 has tokens
  refused(too_many, "fewer than its 6 prefill rounds");
  ShardRequest zigzag = Zigzag();
  zigzag.prefill_rounds = 2;
  refused(zigzag, "needs a contiguous plan of several shards");
  ShardRequest alone = Request(10, 1);
  alone.shards = {{"a:1", 0, 10}};
  alone.rank = 0;
  alone.token_ids.assign(10, 5);
  alone.prefill_rounds = 2;
  refused(alone, "needs a contiguous plan of several shards");
  ShardRequest prefix = Rounds();
  prefix.rank = 0;
  prefix.max_new_tokens = 0;
  prefix.token_ids.assign(5, 5);
  prefix.prefix_token_ids.assign(0, 1);
  prefix.resume_from = 3;
  refused(prefix, "a plan in rounds neither keeps nor resumes prefixes");
  ShardRequest gap = Rounds();
  gap.shards[1].begin = 6;  // the shares must still tile the prompt
  gap.token_ids.assign(4, 5);
  EXPECT_EQ(Code(gap), absl::StatusCode::kInvalidArgument);
  ShardRequest count = Rounds();
  count.token_ids.assign(3, 5);  // only the first round's piece
  EXPECT_EQ(Code(count), absl::StatusCode::kInvalidArgument);
  ShardRequest bad_id = Rounds();
  bad_id.token_ids[2] = 100;  // the second round's piece [7, 10), its first token
  const absl::Status id_status = ValidateShardRequest(bad_id, Config(), Options());
  EXPECT_NE(id_status.message().find("position 7"), std::string::npos) << id_status;
}

TEST(ValidateShardRequestTest, ForgedNumbersAreRefusedQuotingTheLimit) {
  const absl::Status long_run = ValidateShardRequest(Request(10, 10800), Config(), Options());
  EXPECT_EQ(long_run.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(long_run.message().find("[1, 4096]"), std::string::npos) << long_run;
  EXPECT_EQ(Code(Request(10, 0)), absl::StatusCode::kInvalidArgument) << "the last shard must generate";
  EXPECT_EQ(Code(Request(10, -5)), absl::StatusCode::kInvalidArgument);

  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -1.0f}) {
    ShardRequest r = Request(10, 1);
    r.sampling.temperature = bad;
    EXPECT_EQ(Code(r), absl::StatusCode::kInvalidArgument) << bad;
    r = Request(10, 1);
    r.sampling.top_p = bad;
    EXPECT_EQ(Code(r), absl::StatusCode::kInvalidArgument) << bad;
  }
  ShardRequest top_k = Request(10, 1);
  top_k.sampling.top_k = -3;
  EXPECT_EQ(Code(top_k), absl::StatusCode::kInvalidArgument);

  ShardRequest reserved = Request(10, 1);
  reserved.reserved_bytes = std::numeric_limits<int64_t>::max() - 1000;
  const absl::Status huge = ValidateShardRequest(reserved, Config(), Options());
  EXPECT_EQ(huge.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(huge.message().find("this worker's budget"), std::string::npos) << huge;
  reserved.reserved_bytes = -1;
  EXPECT_EQ(Code(reserved), absl::StatusCode::kInvalidArgument);

  ShardRequest timeout = Request(10, 1);
  timeout.peer_timeout = std::chrono::milliseconds(-1);
  EXPECT_EQ(Code(timeout), absl::StatusCode::kInvalidArgument);
  timeout.peer_timeout = std::chrono::milliseconds(std::numeric_limits<int32_t>::max());
  EXPECT_TRUE(ValidateShardRequest(timeout, Config(), Options()).ok()) << "a long timeout is capped, not refused";

  ShardRequest far = Request(10, 1);
  far.shards[1].end = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(Code(far), absl::StatusCode::kInvalidArgument) << "positions past any context";

  ShardRequest stops = Request(10, 1);
  stops.stop_token_ids = {5, 100};
  EXPECT_EQ(Code(stops), absl::StatusCode::kInvalidArgument);
  stops.stop_token_ids.assign(kMaxStopTokenIds + 1, 5);
  EXPECT_EQ(Code(stops), absl::StatusCode::kInvalidArgument);

  ShardRequest eos = Request(10, 1);
  eos.eos_token_id = -2;
  EXPECT_EQ(Code(eos), absl::StatusCode::kInvalidArgument);

  ShardRequest nccl = Request(10, 1);
  nccl.nccl_group_id = "g";
  nccl.nccl_unique_id = "short";
  EXPECT_EQ(Code(nccl), absl::StatusCode::kInvalidArgument) << "a unique id of the wrong size";
}

// The sampling fields of issue 16, re-checked by the worker with the
// coordinator's limits: a forged RunShard cannot reach the sampler with them.
TEST(ValidateShardRequestTest, PenaltiesBiasLogprobsAndMinTokensAreRechecked) {
  struct Bad {
    void (*edit)(ShardRequest&);
    const char* fragment;
  };
  const Bad bad[] = {
      {[](ShardRequest& r) { r.sampling.repetition_penalty = 0.0f; }, "repetition_penalty must be 0 (none) or in (0, 100]"},
      {[](ShardRequest& r) { r.sampling.repetition_penalty = 1000.0f; }, "repetition_penalty must be 0 (none) or in (0, 100]"},
      {[](ShardRequest& r) { r.sampling.presence_penalty = std::numeric_limits<float>::quiet_NaN(); }, "presence_penalty must be in [-2, 2]"},
      {[](ShardRequest& r) { r.sampling.frequency_penalty = -2.5f; }, "frequency_penalty must be in [-2, 2]"},
      {[](ShardRequest& r) { r.sampling.min_p = 2.0f; }, "min_p must be in [0, 1]"},
      {[](ShardRequest& r) { r.sampling.logit_bias = {{100, 1.0f}}; }, "logit_bias keys must be in [0, 100)"},
      {[](ShardRequest& r) { r.sampling.logit_bias = {{3, 101.0f}}; }, "logit_bias[3] must be in [-100, 100]"},
      {[](ShardRequest& r) { r.sampling.logit_bias.assign(1025, {1, 1.0f}); }, "logit_bias must have at most 1024 entries"},
      {[](ShardRequest& r) { r.sampling.logprobs = 21; }, "logprobs must be in [0, 20]"},
      {[](ShardRequest& r) { r.sampling.min_tokens = 21; }, "min_tokens must be in [0, 20] (max_new_tokens)"},
      {[](ShardRequest& r) { r.sampling.prompt_token_ids = {1, 100}; }, "penalty_token_ids must be in [0, 100)"},
  };
  for (const Bad& b : bad) {
    ShardRequest r = Request(10, 20);
    b.edit(r);
    const absl::Status status = ValidateShardRequest(r, Config(), Options());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << b.fragment;
    EXPECT_NE(status.message().find(b.fragment), std::string::npos) << status;
  }
  ShardRequest good = Request(10, 20);
  good.sampling.repetition_penalty = 1.3f;
  good.sampling.presence_penalty = 2.0f;
  good.sampling.frequency_penalty = -2.0f;
  good.sampling.min_p = 1.0f;
  good.sampling.logit_bias = {{0, -100.0f}, {99, 100.0f}};
  good.sampling.logprobs = 20;
  good.sampling.min_tokens = 20;
  good.sampling.prompt_token_ids = {0, 99};
  EXPECT_TRUE(ValidateShardRequest(good, Config(), Options()).ok());
}

TEST(ValidateShardRequestTest, TheRequestMustCarryASecret) {
  ShardRequest r = Request(10, 1);
  r.secret.clear();
  EXPECT_EQ(Code(r), absl::StatusCode::kInvalidArgument);
  r.secret = std::string(kMaxRequestSecretBytes + 1, 's');
  EXPECT_EQ(Code(r), absl::StatusCode::kInvalidArgument);
  r.secret = std::string(kMinRequestSecretBytes, 's');
  EXPECT_TRUE(ValidateShardRequest(r, Config(), Options()).ok());
  r.request_id = std::string(kMaxRequestIdBytes + 1, 'i');
  EXPECT_EQ(Code(r), absl::StatusCode::kInvalidArgument);
}

// The largest block a peer sends follows the model and the longest shard.
TEST(NetworkLimitsTest, TheLargestPeerBlockIsARingBlockOfTheLongestShard) {
  ModelConfig config;
  config.vocab_size = 100;
  config.attention.num_kv_heads = 2;
  config.attention.head_dim = 16;
  config.attention.num_heads = 4;
  config.blocks.push_back(BlockSpec{BlockKind::kAttention});
  EXPECT_EQ(MaxPeerBlockBytes(config, 1000), 2 * 1000 * 32 * 4);
  ShardLengthBounds bounds;
  bounds.max_context_tokens = 4096;
  bounds.memory_budget_bytes = int64_t{1} << 30;
  bounds.kv_bytes_per_token = 256;
  EXPECT_EQ(LongestShardTokens(bounds), 4096);
  bounds.memory_budget_bytes = 256 * 1000;
  EXPECT_EQ(LongestShardTokens(bounds), 1000);
  const WorkerMessageLimits limits = WorkerMessageLimitsFor(config, bounds);
  EXPECT_GE(limits.deliver_bytes, 2 * 1000 * 32 * 4);
  EXPECT_LT(limits.deliver_bytes, 2 * 1000 * 32 * 4 + (1 << 20));
  EXPECT_LT(limits.max_receive_bytes, 16 << 20) << "far below gRPC's 1 GiB";
  const MailboxLimits mailbox = PeerMailboxLimitsFor(config, bounds);
  EXPECT_EQ(mailbox.max_block_bytes, 2 * 1000 * 32 * 4);
  EXPECT_GE(limits.run_shard_bytes, 1000 * 5) << "1000 token ids of up to 5 bytes";
  // Absurd shapes saturate rather than wrap.
  config.attention.num_kv_heads = int64_t{1} << 40;
  EXPECT_EQ(MaxPeerBlockBytes(config, int64_t{1} << 40), kMaxWorkerMessageBytes);
}

}  // namespace
}  // namespace tessera
