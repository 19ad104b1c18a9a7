// prompt_logprobs from the prompt's logits rows, on the coordinator: row i
// predicts prompt token i + 1, so a prompt of n tokens has n - 1 entries. The
// same definition as the worker's per-token logprobs (worker/sampler.h):
// log-softmax of the raw logits in double, NaN as -inf, the top N most likely
// first with ties to the lower id. (The coordinator may not include worker/,
// hence a second implementation of a dozen lines.)
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "coordinator/generate_types.h"

namespace tessera {

// One row: `token`'s log-probability and the `top_n` most likely tokens.
TokenLogprobs RowLogprobs(absl::Span<const float> row, int32_t token, int32_t top_n);

// `logits` has one row per prompt token (rows == prompt.size()).
std::vector<TokenLogprobs> PromptLogprobs(const Logits& logits, absl::Span<const int32_t> prompt, int32_t top_n);

}  // namespace tessera
