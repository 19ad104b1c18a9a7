// Parsing checks each field's JSON type and nothing more (the coordinator
// checks values); nlohmann::json is used without exceptions: parse() with
// allow_exceptions false, and every get<> after a type check.
#include "services/http/openai_api.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tessera {
namespace {

using nlohmann::json;

// -inf (a token the model rules out) as vLLM spells it: JSON has no infinity.
constexpr double kLogprobFloor = -9999.0;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", what));
}

bool Present(const json& body, const char* field) { return body.contains(field) && !body.at(field).is_null(); }

absl::StatusOr<double> Number(const json& body, const char* field, double fallback) {
  if (!Present(body, field)) return fallback;
  const json& value = body.at(field);
  if (!value.is_number()) return Invalid(field, "must be a number");
  return value.get<double>();
}

absl::StatusOr<int64_t> Integer(const json& body, const char* field, int64_t fallback) {
  if (!Present(body, field)) return fallback;
  const json& value = body.at(field);
  if (value.is_number_unsigned()) {
    if (value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Invalid(field, "is too large");
    }
    return static_cast<int64_t>(value.get<uint64_t>());
  }
  if (!value.is_number_integer()) return Invalid(field, "must be an integer");
  return value.get<int64_t>();
}

// An integer field of a 32-bit proto field; values beyond it are clamped so
// that the coordinator's range check (which quotes the limit) refuses them.
absl::StatusOr<int32_t> Integer32(const json& body, const char* field, int32_t fallback) {
  absl::StatusOr<int64_t> value = Integer(body, field, fallback);
  if (!value.ok()) return value.status();
  return static_cast<int32_t>(std::clamp<int64_t>(*value, std::numeric_limits<int32_t>::min(),
                                                  std::numeric_limits<int32_t>::max()));
}

absl::StatusOr<bool> Bool(const json& body, const char* field, bool fallback) {
  if (!Present(body, field)) return fallback;
  if (!body.at(field).is_boolean()) return Invalid(field, "must be true or false");
  return body.at(field).get<bool>();
}

absl::StatusOr<std::vector<int32_t>> TokenIds(const json& list, absl::string_view field) {
  std::vector<int32_t> ids;
  for (const json& id : list) {
    if (!id.is_number_integer()) return Invalid(field, "must be a string or a list of token ids (integers)");
    // Outside int32: keep a value the coordinator refuses naming the vocabulary.
    ids.push_back(static_cast<int32_t>(std::clamp<int64_t>(id.get<int64_t>(), -1, std::numeric_limits<int32_t>::max())));
  }
  return ids;
}

absl::Status ParsePrompt(const json& body, GenerateRequest& request) {
  if (!Present(body, "prompt")) return Invalid("prompt", "is required");
  const json* prompt = &body.at("prompt");
  if (prompt->is_array() && !prompt->empty() && (prompt->at(0).is_string() || prompt->at(0).is_array())) {
    if (prompt->size() != 1) {
      return Invalid("prompt", absl::StrCat("must be one prompt (this server completes one prompt per request). "
                                            "Given: a list of ", prompt->size()));
    }
    prompt = &prompt->at(0);
  }
  if (prompt->is_string()) {
    request.prompt_text = prompt->get<std::string>();
    return absl::OkStatus();
  }
  if (!prompt->is_array()) return Invalid("prompt", "must be a string or a list of token ids");
  absl::StatusOr<std::vector<int32_t>> ids = TokenIds(*prompt, "prompt");
  if (!ids.ok()) return ids.status();
  request.prompt_token_ids = *std::move(ids);
  return absl::OkStatus();
}

absl::Status ParseStop(const json& body, StoppingCriteria& stopping) {
  if (!Present(body, "stop")) return absl::OkStatus();
  const json& stop = body.at("stop");
  if (stop.is_string()) {
    stopping.stop_strings.push_back(stop.get<std::string>());
    return absl::OkStatus();
  }
  if (!stop.is_array()) return Invalid("stop", "must be a string or a list of strings");
  for (const json& each : stop) {
    if (!each.is_string()) return Invalid("stop", "must be a string or a list of strings");
    stopping.stop_strings.push_back(each.get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status ParseLogitBias(const json& body, SamplingParams& sampling) {
  if (!Present(body, "logit_bias")) return absl::OkStatus();
  const json& bias = body.at("logit_bias");
  if (!bias.is_object()) return Invalid("logit_bias", "must be an object of token id -> bias");
  for (const auto& [key, value] : bias.items()) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(key, &id)) {
      return Invalid("logit_bias", absl::StrCat("keys must be token ids. Given: '", key, "'"));
    }
    if (!value.is_number()) return Invalid("logit_bias", absl::StrCat("values must be numbers. Given for ", key, ": ", value.dump()));
    sampling.logit_bias.push_back({id, value.get<float>()});
  }
  return absl::OkStatus();
}

// The fields that this server takes only at OpenAI's defaults.
absl::Status RefuseUnsupported(const json& body) {
  for (const char* field : {"n", "best_of"}) {
    absl::StatusOr<int64_t> count = Integer(body, field, 1);
    if (!count.ok()) return count.status();
    if (*count != 1) {
      return Invalid(field, absl::StrCat("must be 1 (this server returns one completion per request). Given: ", *count));
    }
  }
  absl::StatusOr<bool> echo = Bool(body, "echo", false);
  if (!echo.ok()) return echo.status();
  if (*echo) return Invalid("echo", "is not supported (use prompt_logprobs for the prompt's log-probabilities)");
  if (Present(body, "suffix")) return Invalid("suffix", "is not supported");
  return absl::OkStatus();
}

json LogprobsJson(const std::vector<int32_t>& token_ids, const std::vector<TokenLogprobs>& logprobs,
                  const CompletionContext& context) {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       text_offset = json::array();
  size_t offset = 0;
  for (size_t i = 0; i < logprobs.size() && i < token_ids.size(); ++i) {
    const std::string text = context.token_text(token_ids[i]);
    tokens.push_back(text);
    token_logprobs.push_back(std::max<double>(logprobs[i].logprob, kLogprobFloor));
    json top = json::object();
    for (const TokenLogprob& alternative : logprobs[i].top) {
      top[context.token_text(alternative.token_id)] = std::max<double>(alternative.logprob, kLogprobFloor);
    }
    top_logprobs.push_back(std::move(top));
    text_offset.push_back(offset);
    offset += text.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs},
          {"text_offset", text_offset}};
}

json FinishReasonJson(const std::optional<FinishReason>& reason) {
  if (!reason) return nullptr;
  switch (*reason) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStopToken:
    case FinishReason::kEos:
    case FinishReason::kStopString:
      return "stop";
    case FinishReason::kAborted:
      return "abort";  // vLLM's word for it
    case FinishReason::kUnspecified:
      break;
  }
  return nullptr;
}

json UsageJson(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.total_tokens},
          {"prompt_tokens_details", {{"cached_tokens", usage.cached_prompt_tokens}}}};  // OpenAI's field
}

json Envelope(const CompletionContext& context) {
  return {{"id", context.id}, {"object", "text_completion"}, {"created", context.created}, {"model", context.model}};
}

}  // namespace

absl::StatusOr<CompletionCall> ParseCompletionRequest(absl::string_view body_text, const std::string& model_name,
                                                      uint64_t random_seed) {
  const json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return absl::InvalidArgumentError("the request body must be JSON");
  if (!body.is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");
  if (Present(body, "model")) {
    if (!body.at("model").is_string()) return Invalid("model", "must be a string");
    if (body.at("model").get<std::string>() != model_name) {
      return absl::NotFoundError(absl::StrCat("the model '", body.at("model").get<std::string>(),
                                              "' does not exist; this server serves '", model_name, "'"));
    }
  }
  RETURN_IF_ERROR(RefuseUnsupported(body));
  CompletionCall call;
  GenerateRequest& request = call.request;
  RETURN_IF_ERROR(ParsePrompt(body, request));
  ASSIGN_OR_RETURN(call.stream, Bool(body, "stream", false));
  if (Present(body, "stream_options")) {
    const json& options = body.at("stream_options");
    if (!options.is_object()) return Invalid("stream_options", "must be an object");
    ASSIGN_OR_RETURN(call.include_usage, Bool(options, "include_usage", false));
  }
  SamplingParams& sampling = request.sampling;
  ASSIGN_OR_RETURN(sampling.temperature, Number(body, "temperature", 1.0));
  ASSIGN_OR_RETURN(sampling.top_p, Number(body, "top_p", 1.0));
  ASSIGN_OR_RETURN(sampling.top_k, Integer32(body, "top_k", 0));
  if (sampling.top_k == -1) sampling.top_k = 0;  // vLLM's "all"
  ASSIGN_OR_RETURN(sampling.min_p, Number(body, "min_p", 0.0));
  ASSIGN_OR_RETURN(sampling.repetition_penalty, Number(body, "repetition_penalty", 1.0));
  ASSIGN_OR_RETURN(sampling.presence_penalty, Number(body, "presence_penalty", 0.0));
  ASSIGN_OR_RETURN(sampling.frequency_penalty, Number(body, "frequency_penalty", 0.0));
  if (Present(body, "seed")) {
    const json& seed = body.at("seed");
    if (!seed.is_number_integer()) return Invalid("seed", "must be an integer");
    sampling.seed = seed.is_number_unsigned() ? seed.get<uint64_t>() : static_cast<uint64_t>(seed.get<int64_t>());
  } else {
    sampling.seed = random_seed;
  }
  if (Present(body, "logprobs")) {
    ASSIGN_OR_RETURN(sampling.logprobs, Integer32(body, "logprobs", 0));
  }
  if (Present(body, "prompt_logprobs")) {
    ASSIGN_OR_RETURN(sampling.prompt_logprobs, Integer32(body, "prompt_logprobs", 0));
  }
  RETURN_IF_ERROR(ParseLogitBias(body, sampling));

  StoppingCriteria& stopping = request.stopping;
  ASSIGN_OR_RETURN(stopping.max_new_tokens, Integer32(body, "max_tokens", 0));
  ASSIGN_OR_RETURN(stopping.min_tokens, Integer32(body, "min_tokens", 0));
  ASSIGN_OR_RETURN(stopping.ignore_eos, Bool(body, "ignore_eos", false));
  RETURN_IF_ERROR(ParseStop(body, stopping));
  if (Present(body, "stop_token_ids")) {
    if (!body.at("stop_token_ids").is_array()) return Invalid("stop_token_ids", "must be a list of token ids");
    ASSIGN_OR_RETURN(stopping.stop_token_ids, TokenIds(body.at("stop_token_ids"), "stop_token_ids"));
  }
  ASSIGN_OR_RETURN(request.priority, Integer32(body, "priority", 0));
  if (Present(body, "cache_salt")) {  // vLLM's field
    if (!body.at("cache_salt").is_string()) return Invalid("cache_salt", "must be a string");
    request.cache_salt = body.at("cache_salt").get<std::string>();
  }
  ASSIGN_OR_RETURN(request.bypass_prefix_cache, Bool(body, "bypass_prefix_cache", false));
  bool skip_special_tokens = true;
  ASSIGN_OR_RETURN(skip_special_tokens, Bool(body, "skip_special_tokens", true));
  request.keep_special_tokens = !skip_special_tokens;
  ASSIGN_OR_RETURN(request.add_special_tokens, Bool(body, "add_special_tokens", true));
  return call;
}

json CompletionJson(const GenerateResult& result, const CompletionContext& context) {
  json choice = {{"index", 0}, {"text", result.text}, {"logprobs", nullptr},
                 {"finish_reason", FinishReasonJson(result.finish_reason)}};
  if (!result.logprobs.empty()) choice["logprobs"] = LogprobsJson(result.token_ids, result.logprobs, context);
  if (!result.prompt_logprobs.empty()) {
    json prompt = json::array();
    prompt.push_back(nullptr);  // the first prompt token has no context
    for (const TokenLogprobs& position : result.prompt_logprobs) {
      json entry = json::object();
      entry[context.token_text(position.token_id)] = std::max<double>(position.logprob, kLogprobFloor);
      for (const TokenLogprob& alternative : position.top) {
        entry[context.token_text(alternative.token_id)] = std::max<double>(alternative.logprob, kLogprobFloor);
      }
      prompt.push_back(std::move(entry));
    }
    choice["prompt_logprobs"] = std::move(prompt);
  }
  json out = Envelope(context);
  out["choices"] = json::array({std::move(choice)});
  out["usage"] = UsageJson(result.usage);
  return out;
}

json CompletionChunkJson(const TokenDelta& delta, const std::optional<FinishReason>& finish_reason,
                         const CompletionContext& context) {
  json choice = {{"index", 0}, {"text", delta.text}, {"logprobs", nullptr},
                 {"finish_reason", FinishReasonJson(finish_reason)}};
  if (!delta.logprobs.empty()) choice["logprobs"] = LogprobsJson(delta.token_ids, delta.logprobs, context);
  json out = Envelope(context);
  out["choices"] = json::array({std::move(choice)});
  return out;
}

json UsageChunkJson(const Usage& usage, const CompletionContext& context) {
  json out = Envelope(context);
  out["choices"] = json::array();
  out["usage"] = UsageJson(usage);
  return out;
}

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;  // the client went away (nginx's code; nobody reads it)
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
      break;
    default:
      break;
  }
  return 500;
}

json ErrorJson(const absl::Status& status) {
  const int http = HttpStatusOf(status.code());
  std::string type = "server_error";
  json code = nullptr;
  if (http == 400) type = "invalid_request_error";
  if (http == 401) {
    type = "authentication_error";
    code = "invalid_api_key";
  }
  if (http == 404) type = "not_found_error";
  if (http == 429) {
    type = "rate_limit_error";
    code = "rate_limit_exceeded";
  }
  if (http == 503) type = "service_unavailable";
  json error = {{"message", std::string(status.message())}, {"type", type}, {"param", nullptr}, {"code", code}};
  return {{"error", std::move(error)}};
}

}  // namespace tessera
