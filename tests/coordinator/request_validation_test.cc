// Every rejected field yields INVALID_ARGUMENT with the limit and the value.
#include "coordinator/request_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace tessera {
namespace {

using ::testing::HasSubstr;

GenerateLimits Limits() {
  GenerateLimits limits;
  limits.vocab_size = 64;
  limits.max_new_tokens_limit = 4096;
  limits.max_context_tokens = 0;
  return limits;
}

GenerateRequest Valid() {
  GenerateRequest request;
  request.prompt_token_ids = {1, 2, 3};
  request.stopping.max_new_tokens = 8;
  return request;
}

void ExpectRejected(const GenerateRequest& request, const std::string& fragment,
                    const GenerateLimits& limits = Limits()) {
  const absl::Status status = ValidateGenerateRequest(request, limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(fragment));
}

TEST(GenerateRequestValidationTest, AcceptsAValidRequest) { EXPECT_TRUE(ValidateGenerateRequest(Valid(), Limits()).ok()); }

TEST(GenerateRequestValidationTest, EmptyPrompt) {
  GenerateRequest request = Valid();
  request.prompt_token_ids.clear();
  ExpectRejected(request, "the prompt is empty: give prompt_token_ids (at least 1 token) or prompt_text");
  EXPECT_EQ(ValidatePromptForm(request).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GenerateRequestValidationTest, PromptTextOrIdsNotBoth) {
  GenerateRequest request = Valid();
  request.prompt_text = "Hello";
  const absl::Status both = ValidatePromptForm(request);
  EXPECT_EQ(both.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(both.message()),
              HasSubstr("give prompt_token_ids or prompt_text, not both. Given: 3 token ids and 5 bytes of text"));
  ExpectRejected(request, "not both");
}

TEST(GenerateRequestValidationTest, PromptTextAloneIsAValidForm) {
  GenerateRequest request = Valid();
  request.prompt_token_ids.clear();
  request.prompt_text = "Hello";
  EXPECT_TRUE(ValidatePromptForm(request).ok());
  // The rest is checked on the ids the text becomes, never on the text itself.
  EXPECT_EQ(ValidateGenerateRequest(request, Limits()).code(), absl::StatusCode::kInternal);
}

TEST(GenerateRequestValidationTest, AddSpecialTokensAloneDoesNotMakeAPrompt) {
  GenerateRequest request = Valid();
  request.prompt_token_ids.clear();
  request.add_special_tokens = true;
  EXPECT_EQ(ValidatePromptForm(request).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GenerateRequestValidationTest, TokenIdOutsideTheVocabulary) {
  GenerateRequest request = Valid();
  request.prompt_token_ids[2] = 64;
  ExpectRejected(request, "prompt_token_ids[2] must be in [0, 64) (the model's vocab_size is 64). Given: 64");
  request.prompt_token_ids[2] = -1;
  ExpectRejected(request, "Given: -1");
}

TEST(GenerateRequestValidationTest, MaxNewTokens) {
  GenerateRequest request = Valid();
  request.stopping.max_new_tokens = -1;
  ExpectRejected(request, "max_new_tokens must be >= 0 (0: up to the served context, at most the server's default). Given: -1");
  request.stopping.max_new_tokens = 5000;
  ExpectRejected(request, "max_new_tokens must be <= 4096. Given: 5000");
}

TEST(GenerateRequestValidationTest, StopTokenOutsideTheVocabulary) {
  GenerateRequest request = Valid();
  request.stopping.stop_token_ids.push_back(100);
  ExpectRejected(request, "stop_token_ids[0] must be in [0, 64)");
}

TEST(GenerateRequestValidationTest, Sampling) {
  GenerateRequest request = Valid();
  request.sampling.temperature = -0.5f;
  ExpectRejected(request, "temperature must be >= 0. Given: -0.5");
  request = Valid();
  request.sampling.top_p = 1.5f;
  ExpectRejected(request, "top_p must be in [0, 1]. Given: 1.5");
  request = Valid();
  request.sampling.top_k = -1;
  ExpectRejected(request, "top_k must be >= 0. Given: -1");
}

TEST(GenerateRequestValidationTest, MaxPositionEmbeddings) {
  GenerateLimits limits = Limits();
  limits.max_context_tokens = 10;
  ExpectRejected(Valid(),
                 "prompt_tokens + max_new_tokens must be <= 10 (the served context: --max-context-tokens, else the model's max_position_embeddings). "
                 "Given: 3 + 8 = 11",
                 limits);
}

TEST(GenerateRequestValidationTest, MaxNewTokensZeroResolvesToTheContextLeftAtMostTheDefault) {
  GenerateLimits limits = Limits();
  limits.default_max_new_tokens = 100;
  GenerateRequest request = Valid();
  request.stopping.max_new_tokens = 0;
  ASSERT_TRUE(ResolveMaxNewTokens(request, limits).ok());
  EXPECT_EQ(request.stopping.max_new_tokens, 100) << "no served context: the default";
  limits.max_context_tokens = 20;
  request.stopping.max_new_tokens = 0;
  ASSERT_TRUE(ResolveMaxNewTokens(request, limits).ok());
  EXPECT_EQ(request.stopping.max_new_tokens, 17) << "20 - 3 prompt tokens";
  limits.max_new_tokens_limit = 5;
  request.stopping.max_new_tokens = 0;
  ASSERT_TRUE(ResolveMaxNewTokens(request, limits).ok());
  EXPECT_EQ(request.stopping.max_new_tokens, 5) << "never past the limit";
  request.stopping.max_new_tokens = 7;
  ASSERT_TRUE(ResolveMaxNewTokens(request, limits).ok());
  EXPECT_EQ(request.stopping.max_new_tokens, 7) << "a given value is left for validation";
  limits.max_context_tokens = 3;
  request.stopping.max_new_tokens = 0;
  const absl::Status full = ResolveMaxNewTokens(request, limits);
  EXPECT_EQ(full.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(full.message()), HasSubstr("prompt_tokens must be < 3"));
}

// Every new field out of range (NaN included), each message quoting its limit.
TEST(GenerateRequestValidationTest, PenaltiesMinPLogprobsAndMinTokens) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Bad {
    std::function<void(GenerateRequest&)> edit;
    std::string fragment;
  };
  const std::vector<Bad> bad = {
      {[&](GenerateRequest& r) { r.sampling.repetition_penalty = -1; }, "repetition_penalty must be 0 (none) or in (0, 100]. Given: -1"},
      {[&](GenerateRequest& r) { r.sampling.repetition_penalty = 101; }, "repetition_penalty must be 0 (none) or in (0, 100]. Given: 101"},
      {[&](GenerateRequest& r) { r.sampling.repetition_penalty = nan; }, "repetition_penalty must be 0 (none) or in (0, 100]. Given: nan"},
      {[&](GenerateRequest& r) { r.sampling.presence_penalty = 2.5f; }, "presence_penalty must be in [-2, 2]. Given: 2.5"},
      {[&](GenerateRequest& r) { r.sampling.presence_penalty = nan; }, "presence_penalty must be in [-2, 2]. Given: nan"},
      {[&](GenerateRequest& r) { r.sampling.frequency_penalty = -inf; }, "frequency_penalty must be in [-2, 2]. Given: -inf"},
      {[&](GenerateRequest& r) { r.sampling.min_p = 1.5f; }, "min_p must be in [0, 1]. Given: 1.5"},
      {[&](GenerateRequest& r) { r.sampling.min_p = nan; }, "min_p must be in [0, 1]. Given: nan"},
      {[&](GenerateRequest& r) { r.sampling.logprobs = 21; }, "logprobs must be in [0, 20]. Given: 21"},
      {[&](GenerateRequest& r) { r.sampling.logprobs = -1; }, "logprobs must be in [0, 20]. Given: -1"},
      {[&](GenerateRequest& r) { r.sampling.prompt_logprobs = 99; }, "prompt_logprobs must be in [0, 20]. Given: 99"},
      {[&](GenerateRequest& r) { r.stopping.min_tokens = 9; }, "min_tokens must be in [0, 8] (max_new_tokens). Given: 9"},
      {[&](GenerateRequest& r) { r.stopping.min_tokens = -1; }, "min_tokens must be in [0, 8] (max_new_tokens). Given: -1"},
  };
  for (const Bad& b : bad) {
    GenerateRequest request = Valid();
    b.edit(request);
    ExpectRejected(request, b.fragment);
  }
  GenerateRequest good = Valid();
  good.sampling.repetition_penalty = 1.1f;
  good.sampling.presence_penalty = -2.0f;
  good.sampling.frequency_penalty = 2.0f;
  good.sampling.min_p = 1.0f;
  good.sampling.logprobs = 0;
  good.sampling.prompt_logprobs = 20;
  good.stopping.min_tokens = 8;
  EXPECT_TRUE(ValidateGenerateRequest(good, Limits()).ok());
}

TEST(GenerateRequestValidationTest, LogitBias) {
  GenerateRequest request = Valid();
  for (int32_t id = 0; id < 64; ++id) request.sampling.logit_bias.push_back({id, 1.0f});
  EXPECT_TRUE(ValidateGenerateRequest(request, Limits()).ok());
  GenerateLimits big_vocab = Limits();
  big_vocab.vocab_size = 5000;
  request.sampling.logit_bias.clear();
  for (int32_t id = 0; id < 1025; ++id) request.sampling.logit_bias.push_back({id, 1.0f});
  ExpectRejected(request, "logit_bias must have at most 1024 entries. Given: 1025", big_vocab);
  request.sampling.logit_bias = {{64, 1.0f}};
  ExpectRejected(request, "logit_bias keys must be token ids in [0, 64) (the model's vocab_size is 64). Given: 64");
  request.sampling.logit_bias = {{3, 1.0f}, {3, 2.0f}};
  ExpectRejected(request, "logit_bias must name each token id once. Given: 3 twice");
  request.sampling.logit_bias = {{3, 100.5f}};
  ExpectRejected(request, "logit_bias[3] must be in [-100, 100]. Given: 100.5");
  request.sampling.logit_bias = {{3, std::numeric_limits<float>::quiet_NaN()}};
  ExpectRejected(request, "logit_bias[3] must be in [-100, 100]. Given: nan");
}

TEST(GenerateRequestValidationTest, StopStrings) {
  GenerateLimits limits = Limits();
  limits.has_tokenizer = true;
  GenerateRequest request = Valid();
  request.stopping.stop_strings.assign(16, "x");
  EXPECT_TRUE(ValidateGenerateRequest(request, limits).ok());
  request.stopping.stop_strings.assign(17, "x");
  ExpectRejected(request, "stop_strings must have at most 16 strings. Given: 17", limits);
  request.stopping.stop_strings = {"ok", std::string(257, 'a')};
  ExpectRejected(request, "stop_strings[1] must have 1 to 256 bytes. Given: 257", limits);
  request.stopping.stop_strings = {""};
  ExpectRejected(request, "stop_strings[0] must have 1 to 256 bytes. Given: 0", limits);
  request.stopping.stop_strings = {"a\xC3"};
  ExpectRejected(request, "stop_strings[0] must be valid UTF-8. Given: an invalid byte at offset 1", limits);
  request.stopping.stop_strings = {"fine"};
  const absl::Status no_tokenizer = ValidateGenerateRequest(request, Limits());
  EXPECT_EQ(no_tokenizer.code(), absl::StatusCode::kFailedPrecondition) << no_tokenizer;
  EXPECT_THAT(std::string(no_tokenizer.message()), HasSubstr("no tokenizer"));
}

TEST(GenerateRequestValidationTest, PromptLogprobsAreBoundedByTheLogitsTheyNeed) {
  GenerateLimits limits = Limits();
  limits.vocab_size = 1 << 15;
  GenerateRequest request = Valid();
  request.sampling.prompt_logprobs = 1;
  request.prompt_token_ids.assign(1024, 1);
  EXPECT_TRUE(ValidateGenerateRequest(request, limits).ok());
  request.prompt_token_ids.assign(1025, 1);
  ExpectRejected(request, "prompt_tokens x vocab_size must be <= 33554432. Given: 1025 x 32768", limits);
}

}  // namespace
}  // namespace tessera
