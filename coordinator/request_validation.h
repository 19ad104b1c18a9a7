// Checks a GenerateRequest against limits that do not depend on the cluster's
// momentary state: a request that fails here can never work, so it is
// INVALID_ARGUMENT, and the message quotes the limit ("max_new_tokens must be
// <= 4096. Given: 5000"). Capacity checks need the workers: see
// shard_placement.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "coordinator/generate_types.h"

namespace tessera {

// Stop tokens one request may give (each is checked at every generated token).
inline constexpr size_t kMaxStopTokenIds = 1024;
// Stop strings: how many, and how long each (every one is searched for in
// the text of every delta).
inline constexpr size_t kMaxStopStrings = 16;
inline constexpr size_t kMaxStopStringBytes = 256;
// GenerateRequest.cache_salt (a tenant id or a hash of one).
inline constexpr int64_t kMaxCacheSaltBytes = 256;
// Sampling bounds (the workers check the same: worker/shard_validation.h).
inline constexpr float kMaxRepetitionPenalty = 100.0f;
inline constexpr float kMaxPresenceFrequencyPenalty = 2.0f;
inline constexpr float kMaxLogitBias = 100.0f;
inline constexpr size_t kMaxLogitBiasEntries = 1024;
inline constexpr int32_t kMaxLogprobs = 20;
// prompt_logprobs needs every prompt row's logits from the workers: at most
// this many values (prompt tokens x vocab_size, 128 MiB of fp32).
inline constexpr int64_t kMaxPromptLogprobsValues = int64_t{1} << 25;

struct GenerateLimits {
  int64_t vocab_size = 0;
  int32_t max_new_tokens_limit = 4096;
  int64_t max_context_tokens = 0;  // served prompt + generation limit; 0: none
  int32_t default_max_new_tokens = 1024;  // what max_new_tokens 0 means at most
  bool has_tokenizer = false;             // stop strings need one
};

// Exactly one of prompt_token_ids and prompt_text must be given. Checked
// before a text prompt is tokenized; ValidateGenerateRequest checks it again.
absl::Status ValidatePromptForm(const GenerateRequest& request);

// max_new_tokens 0 becomes what is left of max_context_tokens after the
// prompt (any number when it is 0), at most default_max_new_tokens and
// max_new_tokens_limit; INVALID_ARGUMENT when the prompt leaves no room.
// Other values are left for ValidateGenerateRequest. `request` has its
// prompt as token ids.
absl::Status ResolveMaxNewTokens(GenerateRequest& request, const GenerateLimits& limits);

// Every field of a request whose prompt is token ids (a text prompt is
// validated after tokenization, as the ids it became).
absl::Status ValidateGenerateRequest(const GenerateRequest& request, const GenerateLimits& limits);

}  // namespace tessera
