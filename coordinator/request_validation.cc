// One check per field, in the order a reader of the request would meet them.
#include "coordinator/request_validation.h"

#include <algorithm>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "coordinator/tokenizer/utf8.h"

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
  const float repetition = sampling.repetition_penalty;
  if (!(repetition == 0.0f || (repetition > 0.0f && repetition <= kMaxRepetitionPenalty))) {
    return absl::InvalidArgumentError(absl::StrCat("repetition_penalty must be 0 (none) or in (0, ",
                                                   kMaxRepetitionPenalty, "]. Given: ", repetition));
  }
  for (const auto& [name, value] : {std::pair<const char*, float>{"presence_penalty", sampling.presence_penalty},
                                    std::pair<const char*, float>{"frequency_penalty", sampling.frequency_penalty}}) {
    if (!(value >= -kMaxPresenceFrequencyPenalty && value <= kMaxPresenceFrequencyPenalty)) {
      return absl::InvalidArgumentError(absl::StrCat(name, " must be in [-", kMaxPresenceFrequencyPenalty, ", ",
                                                     kMaxPresenceFrequencyPenalty, "]. Given: ", value));
    }
  }
  if (!(sampling.min_p >= 0.0f && sampling.min_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("min_p must be in [0, 1]. Given: ", sampling.min_p));
  }
  for (const auto& [name, value] : {std::pair<const char*, std::optional<int32_t>>{"logprobs", sampling.logprobs},
                                    std::pair<const char*, std::optional<int32_t>>{"prompt_logprobs",
                                                                                   sampling.prompt_logprobs}}) {
    if (value && (*value < 0 || *value > kMaxLogprobs)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be in [0, ", kMaxLogprobs, "]. Given: ", *value));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLogitBias(absl::Span<const std::pair<int32_t, float>> bias, int64_t vocab_size) {
  if (bias.size() > kMaxLogitBiasEntries) {
    return absl::InvalidArgumentError(absl::StrCat("logit_bias must have at most ", kMaxLogitBiasEntries,
                                                   " entries. Given: ", bias.size()));
  }
  std::set<int32_t> ids;
  for (const auto& [id, value] : bias) {
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("logit_bias keys must be token ids in [0, ", vocab_size,
                                                     ") (the model's vocab_size is ", vocab_size, "). Given: ", id));
    }
    if (!ids.insert(id).second) {
      return absl::InvalidArgumentError(absl::StrCat("logit_bias must name each token id once. Given: ", id, " twice"));
    }
    if (!(value >= -kMaxLogitBias && value <= kMaxLogitBias)) {
      return absl::InvalidArgumentError(absl::StrCat("logit_bias[", id, "] must be in [-", kMaxLogitBias, ", ",
                                                     kMaxLogitBias, "]. Given: ", value));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckStopStrings(const std::vector<std::string>& stop_strings, bool has_tokenizer) {
  if (stop_strings.size() > kMaxStopStrings) {
    return absl::InvalidArgumentError(absl::StrCat("stop_strings must have at most ", kMaxStopStrings,
                                                   " strings. Given: ", stop_strings.size()));
  }
  for (size_t i = 0; i < stop_strings.size(); ++i) {
    const std::string& stop = stop_strings[i];
    if (stop.empty() || stop.size() > kMaxStopStringBytes) {
      return absl::InvalidArgumentError(absl::StrCat("stop_strings[", i, "] must have 1 to ", kMaxStopStringBytes,
                                                     " bytes. Given: ", stop.size()));
    }
    if (const size_t invalid = Utf8FirstInvalid(stop); invalid < stop.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop_strings[", i, "] must be valid UTF-8. Given: an invalid byte at offset ", invalid));
    }
  }
  if (!stop_strings.empty() && !has_tokenizer) {
    return absl::FailedPreconditionError(
        "stop_strings are matched on the text: this server has no tokenizer (start the coordinator with --tokenizer)");
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

absl::Status ResolveMaxNewTokens(GenerateRequest& request, const GenerateLimits& limits) {
  if (request.stopping.max_new_tokens != 0) return absl::OkStatus();
  const int64_t prompt_tokens = static_cast<int64_t>(request.prompt_token_ids.size());
  int64_t tokens = std::min<int64_t>(limits.default_max_new_tokens, limits.max_new_tokens_limit);
  if (limits.max_context_tokens > 0) tokens = std::min(tokens, limits.max_context_tokens - prompt_tokens);
  if (tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_new_tokens 0 means up to the served context, but the prompt's ", prompt_tokens,
        " tokens leave no room: prompt_tokens must be < ", limits.max_context_tokens,
        " (the served context: --max-context-tokens, else the model's max_position_embeddings)"));
  }
  request.stopping.max_new_tokens = static_cast<int32_t>(tokens);
  return absl::OkStatus();
}

absl::Status ValidateGenerateRequest(const GenerateRequest& request, const GenerateLimits& limits) {
  if (absl::Status s = ValidatePromptForm(request); !s.ok()) return s;
  if (!request.prompt_text.empty()) {
    return absl::InternalError("prompt_text must be tokenized before the request is validated");
  }
  if (static_cast<int64_t>(request.cache_salt.size()) > kMaxCacheSaltBytes) {
    return absl::InvalidArgumentError(absl::StrCat("cache_salt must have at most ", kMaxCacheSaltBytes,
                                                   " bytes. Given: ", request.cache_salt.size()));
  }
  const int64_t prompt_tokens = static_cast<int64_t>(request.prompt_token_ids.size());
  if (absl::Status s = CheckTokenIds("prompt_token_ids", request.prompt_token_ids, limits.vocab_size); !s.ok()) {
    return s;
  }
  const int32_t max_new_tokens = request.stopping.max_new_tokens;
  if (max_new_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_new_tokens must be >= 0 (0: up to the served context, at most the server's default). Given: ",
        max_new_tokens));
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
  if (absl::Status s = CheckLogitBias(request.sampling.logit_bias, limits.vocab_size); !s.ok()) return s;
  if (request.stopping.min_tokens < 0 || request.stopping.min_tokens > max_new_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("min_tokens must be in [0, ", max_new_tokens,
                                                   "] (max_new_tokens). Given: ", request.stopping.min_tokens));
  }
  if (absl::Status s = CheckStopStrings(request.stopping.stop_strings, limits.has_tokenizer); !s.ok()) return s;
  if (request.sampling.prompt_logprobs &&
      prompt_tokens > kMaxPromptLogprobsValues / std::max<int64_t>(limits.vocab_size, 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_logprobs needs every prompt row's logits: prompt_tokens x vocab_size must be <= ",
        kMaxPromptLogprobsValues, ". Given: ", prompt_tokens, " x ", limits.vocab_size));
  }
  const int64_t total_tokens = prompt_tokens + max_new_tokens;
  if (limits.max_context_tokens > 0 && total_tokens > limits.max_context_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_tokens + max_new_tokens must be <= ", limits.max_context_tokens,
        " (the served context: --max-context-tokens, else the model's max_position_embeddings). Given: ", prompt_tokens, " + ", max_new_tokens, " = ", total_tokens));
  }
  return absl::OkStatus();
}

}  // namespace tessera
