// Token embedding lookup: out[t] = table[ids[t]]. Ids come from users, so every
// id is checked against the vocabulary and a bad one is an INVALID_ARGUMENT.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace tessera {

struct EmbeddingParams {
  int64_t num_tokens = 0;
  int64_t vocab_size = 0;
  int64_t hidden = 0;
  const int32_t* ids = nullptr;   // (num_tokens)
  const float* table = nullptr;   // (vocab_size, hidden)
  float* out = nullptr;           // (num_tokens, hidden)
};

namespace cpu {
absl::Status Embedding(const EmbeddingParams& p);
}  // namespace cpu

}  // namespace tessera
