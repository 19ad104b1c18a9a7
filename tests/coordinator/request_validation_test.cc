// Every rejected field yields INVALID_ARGUMENT with the limit and the value.
#include "coordinator/request_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
  request.stopping.max_new_tokens = 0;
  ExpectRejected(request, "max_new_tokens must be >= 1. Given: 0");
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

}  // namespace
}  // namespace tessera
