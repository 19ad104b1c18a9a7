// Token embedding lookup: out[t] = table[ids[t]], the table stored as fp32 or
// bf16 (`table_type`) and widened exactly to the fp32 output. Ids come from
// users, so every id is checked against the vocabulary and a bad one is an
// INVALID_ARGUMENT, reported before any output row is written. Both backends
// take both table types. On CUDA the ids are device memory: they are copied
// back and checked first, so cuda::Embedding synchronizes its stream (unless
// the caller checked them: ids_checked).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct EmbeddingParams {
  int64_t num_tokens = 0;         // T (may be 0)
  int64_t vocab_size = 0;         // V
  int64_t hidden = 0;             // D
  const int32_t* ids = nullptr;   // (T), each in [0, V)
  ElementType table_type = ElementType::kF32;
  const void* table = nullptr;    // (V, D) of table_type, row-major
  float* out = nullptr;           // (T, D) fp32
  // The caller has checked every id on the host (CheckEmbeddingTokenIds): on
  // CUDA no copy back and no synchronization, so the op can be captured in a
  // graph. The CPU checks them regardless (they are host memory there).
  bool ids_checked = false;
};

// The contract's checks (kernels/embedding.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "Embedding: <what>" naming the field and the value given.
absl::Status CheckEmbeddingParams(const EmbeddingParams& p);
// Every id of `ids` (host memory, num_tokens of them) lies in [0, vocab_size).
// Run after CheckEmbeddingParams and before any row is written.
absl::Status CheckEmbeddingTokenIds(const int32_t* ids, int64_t num_tokens, int64_t vocab_size);

namespace cpu {
absl::Status Embedding(const EmbeddingParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status Embedding(const EmbeddingParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
