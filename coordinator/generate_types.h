// The coordinator's own request and answer types: what the public API
// (proto/tessera/v1/tessera.proto) carries, field for field, as plain C++, so
// that the coordinator's logic knows no wire format. services/coordinator_proto.h
// converts at the gRPC boundary. Presence matters where the wire has it:
// logits are optional (absent unless asked for), everything else always set.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tessera {

enum class FinishReason {
  kUnspecified,  // still running, or a worker broke the contract
  kLength,       // max_new_tokens reached
  kStopToken,    // a stop token id was produced
  kEos,          // the model's end-of-sequence token was produced
  kStopString,   // the completion's text reached one of the stop strings
  kAborted,      // ended by Abort
};

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  int32_t top_k = 0;         // 0: no top-k cut
  float top_p = 0.0f;        // 0 or 1: no nucleus cut
  uint64_t seed = 0;         // equal seeds give equal samples
  float repetition_penalty = 0.0f;  // 0 or 1: none (prompt + generated tokens, as vLLM)
  float presence_penalty = 0.0f;    // generated tokens, once each
  float frequency_penalty = 0.0f;   // generated tokens, per occurrence
  float min_p = 0.0f;               // 0: no cut
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, bias), ids distinct
  std::optional<int32_t> logprobs;         // alternatives per generated token; absent: no logprobs
  std::optional<int32_t> prompt_logprobs;  // alternatives per prompt token; absent: none
};

struct StoppingCriteria {
  int32_t max_new_tokens = 0;           // [1, max_new_tokens_limit]; 0: the server's default (ResolveMaxNewTokens)
  std::vector<int32_t> stop_token_ids;  // generation stops after emitting any of these
  bool ignore_eos = false;              // do not stop at the model's end-of-sequence token
  std::vector<std::string> stop_strings;  // generation stops when the text reaches any (text_deltas.h)
  int32_t min_tokens = 0;                 // no stop (ids, EOS, strings) before this many tokens
};

struct GenerateRequest {
  std::string request_id;  // the caller's, for logs; empty: the coordinator makes one
  // The prompt: exactly one of token ids and text (UTF-8, tokenized by the coordinator).
  std::vector<int32_t> prompt_token_ids;
  std::string prompt_text;
  bool add_special_tokens = false;   // with prompt_text: add the template's tokens (e.g. BOS)
  bool keep_special_tokens = false;  // in the returned text: spell special tokens
  SamplingParams sampling;
  StoppingCriteria stopping;
  bool return_logits = false;  // every prompt position's and generated token's logits
  int32_t priority = 0;        // admission order when requests wait: lower first, then arrival
  // Prefix reuse (worker/prefix_cache.h): cached prefixes are shared only
  // under equal salts; bypass neither reuses nor keeps any.
  std::string cache_salt;
  bool bypass_prefix_cache = false;
};

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;
};

// One position's token, its log-probability and the most likely alternatives.
struct TokenLogprobs {
  int32_t token_id = 0;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;  // most likely first
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t total_tokens = 0;
  int32_t cached_prompt_tokens = 0;  // leading prompt tokens resumed from the prefix cache, not prefilled
};

struct Logits {
  int32_t rows = 0;
  int32_t vocab_size = 0;
  std::vector<float> values;  // (rows, vocab_size)
};

struct GenerateResult {
  std::string request_id;  // the caller's, or the one the coordinator made
  std::vector<int32_t> token_ids;
  FinishReason finish_reason = FinishReason::kUnspecified;
  Usage usage;
  // Present when the request asked for logits: prompt rows, then one row per generated token.
  std::optional<Logits> prompt_logits;
  std::optional<Logits> token_logits;
  int32_t shards = 0;  // workers that held shards of the request
  std::string text;    // token_ids decoded, when the model has a tokenizer
  std::vector<TokenLogprobs> logprobs;         // one per token_ids entry, when asked for
  std::vector<TokenLogprobs> prompt_logprobs;  // one per prompt token after the first, when asked for
};

// Prefill progress over all shards: the fewest layers any shard has done.
struct PrefillProgress {
  int32_t layers_done = 0;
  int32_t layers_total = 0;
  int32_t prompt_tokens = 0;
  int32_t shards = 0;
};

// Tokens as they are generated. `text` holds whole UTF-8 characters only
// (see text_deltas.h); the deltas' texts joined are the completion's text.
struct TokenDelta {
  std::vector<int32_t> token_ids;
  std::optional<Logits> logits;  // as the worker sent them (when the request asked for logits)
  std::string text;
  std::vector<TokenLogprobs> logprobs;  // one per token_ids entry, when the request asked for logprobs
};

struct TokenizeRequest {
  std::string text;
  bool add_special_tokens = false;
};

struct DetokenizeRequest {
  std::vector<int32_t> token_ids;
  bool keep_special_tokens = false;
};

struct ModelInfo {
  std::string model_type;
  std::string model_path;
  int32_t vocab_size = 0;
  int32_t num_layers = 0;
  int64_t context_capacity_tokens = 0;   // longest prompt + generation, every worker empty
  int64_t context_available_tokens = 0;  // what is free now
  int32_t workers_ready = 0;
  int32_t max_new_tokens_limit = 0;
  int64_t eos_token_id = -1;
  std::string tokenizer_path;  // empty: no tokenizer
  int64_t max_context_tokens = 0;      // served prompt + generation limit; 0: none
  int64_t trained_context_tokens = 0;  // the checkpoint's max_position_embeddings; 0: not stated
  int32_t default_max_new_tokens = 0;  // what max_new_tokens 0 means at most
};

struct WorkerInfo {
  std::string address;
  bool ready = false;
  int64_t capacity_tokens = 0;
  int64_t memory_used_bytes = 0;
  int64_t memory_budget_bytes = 0;
  int32_t active_requests = 0;
  std::string metrics_address;               // empty when the worker serves none
  std::string backend;                       // "cpu" or "cuda", as the worker reports it
  std::vector<std::string> peer_transports;  // "grpc", "nccl"
  std::string not_ready_reason;              // empty when ready
};

struct ServerInfo {
  std::string version;
  std::string backend;
  std::vector<WorkerInfo> workers;  // in registration order
  int32_t running_requests = 0;
  std::string metrics_address;  // empty when the coordinator serves none
  std::string peer_transport;   // "auto", "grpc" or "nccl"
  int32_t nccl_groups = 0;      // NCCL worker groups formed and still in use
  int32_t queued_requests = 0;  // waiting for room now
};

}  // namespace tessera
