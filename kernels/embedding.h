// Token embedding lookup: out[t] = table[ids[t]]. Ids come from users, so every
// id is checked against the vocabulary and a bad one is an INVALID_ARGUMENT.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"

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

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status Embedding(const EmbeddingParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
