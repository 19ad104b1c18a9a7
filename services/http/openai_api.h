// OpenAI's completions API as the coordinator's own types: a request body to
// a GenerateRequest, and results, stream deltas and errors to the JSON
// bodies that OpenAI's clients read. Only the form changes here; what the
// values may be is the coordinator's to judge (request_validation.h), so its
// INVALID_ARGUMENT messages reach the client unchanged.
//
// Fields: prompt (text, token ids, or a list holding one of them), model (the
// served name, or absent), max_tokens (absent or null: 0, the server's
// default), temperature (absent: 1, as OpenAI), top_p, n and best_of (1
// only), stream and stream_options.include_usage, logprobs, echo (false
// only), stop (a string or a list), seed (absent: a random one), presence_penalty,
// frequency_penalty, logit_bias, suffix (absent only), user (ignored); and
// vLLM's extensions top_k (-1 or 0: all), min_p, repetition_penalty,
// min_tokens, ignore_eos, stop_token_ids, prompt_logprobs, priority,
// skip_special_tokens (default true) and add_special_tokens (default true, as
// vLLM's completions). Unknown fields are ignored, as OpenAI does.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/generate_types.h"
#include "nlohmann/json.hpp"

namespace tessera {

struct CompletionCall {
  GenerateRequest request;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with usage
};

// INVALID_ARGUMENT naming the field for a malformed body or a value this
// server never accepts (n > 1, echo); NOT_FOUND for a model it does not serve.
absl::StatusOr<CompletionCall> ParseCompletionRequest(absl::string_view body, const std::string& model_name,
                                                      uint64_t random_seed);

// What the responses need besides the result.
struct CompletionContext {
  std::string id;       // "cmpl-" and the request's id
  int64_t created = 0;  // Unix seconds
  std::string model;
  // A token's text for logprobs ("token_id:N" without a tokenizer).
  std::function<std::string(int32_t)> token_text;
};

// The whole completion (object "text_completion").
nlohmann::json CompletionJson(const GenerateResult& result, const CompletionContext& context);
// One stream chunk: a delta's text and logprobs; `finish_reason` on the last.
nlohmann::json CompletionChunkJson(const TokenDelta& delta, const std::optional<FinishReason>& finish_reason,
                                   const CompletionContext& context);
// The chunk after the last when stream_options.include_usage: no choices, usage.
nlohmann::json UsageChunkJson(const Usage& usage, const CompletionContext& context);

// OpenAI's error shape {"error": {"message", "type", "param", "code"}} and
// the HTTP status of each absl code (400, 401, 404, 429, 503, ...).
nlohmann::json ErrorJson(const absl::Status& status);
int HttpStatusOf(absl::StatusCode code);

}  // namespace tessera
