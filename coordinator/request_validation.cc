// One check per field, in the order a reader of the request would meet them.
#include "coordinator/request_validation.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace tessera {
namespace {

absl::Status CheckTokenIds(absl::string_view field, absl::Span<const int32_t> ids, int64_t vocab_size) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "] must be in [0, ", vocab_size,
                                                     ") (the model's vocab_size is ", vocab_size,
                                                     "). Given: ", ids[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSampling(const SamplingParams& sampling) {
  // Written as negated ranges so that NaN fails too.
  if (!(sampling.temperature >= 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0. Given: ", sampling.temperature));
  }
  if (!(sampling.temperature <= std::numeric_limits<float>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be finite. Given: ", sampling.temperature));
  }
  if (!(sampling.top_p >= 0.0f && sampling.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in [0, 1]. Given: ", sampling.top_p));
  }
  if (sampling.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0. Given: ", sampling.top_k));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePromptForm(const GenerateRequest& request) {
  const bool has_ids = !request.prompt_token_ids.empty();
  const bool has_text = !request.prompt_text.empty();
  if (has_ids && has_text) {
    return absl::InvalidArgumentError(absl::StrCat("give prompt_token_ids or prompt_text, not both. Given: ",
                                                   request.prompt_token_ids.size(), " token ids and ",
                                                   request.prompt_text.size(), " bytes of text"));
  }
  if (!has_ids && !has_text) {
    return absl::InvalidArgumentError(
        "the prompt is empty: give prompt_token_ids (at least 1 token) or prompt_text (at least 1 character)");
  }
  return absl::OkStatus();
}

absl::Status ValidateGenerateRequest(const GenerateRequest& request, const GenerateLimits& limits) {
  if (absl::Status s = ValidatePromptForm(request); !s.ok()) return s;
  if (!request.prompt_text.empty()) {
    return absl::InternalError("prompt_text must be tokenized before the request is validated");
  }
  const int64_t prompt_tokens = static_cast<int64_t>(request.prompt_token_ids.size());
  if (absl::Status s = CheckTokenIds("prompt_token_ids", request.prompt_token_ids, limits.vocab_size); !s.ok()) {
    return s;
  }
  const int32_t max_new_tokens = request.stopping.max_new_tokens;
  if (max_new_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens must be >= 1. Given: ", max_new_tokens));
  }
  if (max_new_tokens > limits.max_new_tokens_limit) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens must be <= ", limits.max_new_tokens_limit, ". Given: ", max_new_tokens));
  }
  if (request.stopping.stop_token_ids.size() > kMaxStopTokenIds) {
    return absl::InvalidArgumentError(absl::StrCat("stop_token_ids must have at most ", kMaxStopTokenIds,
                                                   " ids. Given: ", request.stopping.stop_token_ids.size()));
  }
  if (absl::Status s = CheckTokenIds("stop_token_ids", request.stopping.stop_token_ids, limits.vocab_size);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckSampling(request.sampling); !s.ok()) return s;
  const int64_t total_tokens = prompt_tokens + max_new_tokens;
  if (limits.max_context_tokens > 0 && total_tokens > limits.max_context_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_tokens + max_new_tokens must be <= ", limits.max_context_tokens,
        " (the served context: --max-context-tokens, else the model's max_position_embeddings). Given: ", prompt_tokens, " + ", max_new_tokens, " = ", total_tokens));
  }
  return absl::OkStatus();
}

}  // namespace tessera
