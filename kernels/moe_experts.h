// The routed experts of a mixture-of-experts layer: every token runs the k
// experts MoeRoute chose and adds their outputs, weighted, to y:
//   y[t] += Σ_j w[t, j] · down_e · act(up_e · x[t]),   e = ids[t, j]
// with act relu² (nemotron_h experts: up (E, I, H)) or SwiGLU over a fused
// projection (granitemoehybrid's input_linear: up (E, 2I, H), rows [0, I) the
// gate, [I, 2I) the up half: silu(gate) · up). Each token's sum runs over its
// experts in ascending index order, as transformers' index_add_ loop does.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

enum class MoeExpertActivation { kRelu2, kSwiGluFused };

struct MoeExpertsParams {
  int64_t tokens = 0;        // T (may be 0)
  int64_t hidden = 0;        // H
  int64_t experts = 0;       // E
  int64_t top_k = 0;         // k
  int64_t intermediate = 0;  // I, each expert's width
  MoeExpertActivation activation = MoeExpertActivation::kRelu2;
  ElementType type = ElementType::kF32;  // of x, up and down
  const void* x = nullptr;   // (T, H) of `type`, row stride x_stride
  int64_t x_stride = 0;      // 0 means H
  const int32_t* expert_ids = nullptr;   // (T, k) in [0, E) (MoeRoute)
  const float* expert_weights = nullptr; // (T, k)
  const void* up = nullptr;    // (E, I, H) for kRelu2, (E, 2I, H) for kSwiGluFused; of `type`
  const void* down = nullptr;  // (E, H, I) of `type`
  float* y = nullptr;          // (T, H) fp32, row stride y_stride; accumulated into
  int64_t y_stride = 0;        // 0 means H
};

// The contract's checks (kernels/moe_experts.cc), which every backend runs first.
absl::Status CheckMoeExpertsParams(const MoeExpertsParams& p);

namespace cpu {
// fp32 only; an id outside [0, E) is INVALID_ARGUMENT and leaves y untouched.
absl::Status MoeExperts(const MoeExpertsParams& p);
}  // namespace cpu

// CUDA (tokens permuted by expert, one grouped GEMM for all experts) comes
// with the MoE issue's GPU half; the CUDA backend refuses MoE models until then.

}  // namespace tessera
