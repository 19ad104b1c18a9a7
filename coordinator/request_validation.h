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

struct GenerateLimits {
  int64_t vocab_size = 0;
  int32_t max_new_tokens_limit = 4096;
  int64_t max_context_tokens = 0;  // served prompt + generation limit; 0: none
};

// Exactly one of prompt_token_ids and prompt_text must be given. Checked
// before a text prompt is tokenized; ValidateGenerateRequest checks it again.
absl::Status ValidatePromptForm(const GenerateRequest& request);

// Every field of a request whose prompt is token ids (a text prompt is
// validated after tokenization, as the ids it became).
absl::Status ValidateGenerateRequest(const GenerateRequest& request, const GenerateLimits& limits);

}  // namespace tessera
