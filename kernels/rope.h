// Rotary position embedding, in place, on the first `rotary_dim` channels of
// each head (partial rotary: the rest pass through), in the "rotate half"
// layout of Hugging Face Llama/Bamba: for i < rotary_dim/2,
//   inv_freq_i = theta^(-2i / rotary_dim),  φ = position · inv_freq_i
//   x'[i]        = x[i] · cos φ - x[i + r/2] · sin φ
//   x'[i + r/2]  = x[i + r/2] · cos φ + x[i] · sin φ
// Token t has global position position0 + t, so shards rotate correctly.
// x is fp32 or bf16 (`type`: the q and k columns of the bf16 q|k|v
// projection), rotated in fp32 and rounded back once.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct RopeParams {
  int64_t num_tokens = 0;   // T (may be 0)
  int64_t num_heads = 0;    // H
  int64_t head_dim = 0;     // D
  int64_t rotary_dim = 0;   // even, <= head_dim
  float theta = 10000.0f;   // rope_theta, finite, > 0
  int64_t position0 = 0;    // global position of token 0
  void* x = nullptr;        // (num_tokens, num_heads, head_dim) of `type`, token stride x_stride
  int64_t x_stride = 0;     // 0 means num_heads·head_dim
  // Last, so that brace-initialized params written before it keep their meaning.
  ElementType type = ElementType::kF32;  // of x
};

// The contract's checks (kernels/rope.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckRopeParams(const RopeParams& p);

// inv_freq_i = 1 / theta^(2i / rotary_dim) in fp32, as transformers forms it
// (rotary_dim / 2 of them): the one copy both backends rotate with.
std::vector<float> RopeInverseFrequencies(float theta, int64_t rotary_dim);

namespace cpu {
absl::Status Rope(const RopeParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status Rope(const RopeParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
