// Mixture-of-experts routing: from each token's router logits (fp32, one per
// expert) to the k experts it runs and their weights (DESIGN.md, "Mixture of
// experts"). Two rules, as the families define them:
//   kSigmoidBiased (nemotron_h, DeepSeek-V3 style): s = sigmoid(logits); the
//     choice ranks s + correction_bias, limited to the topk_group groups (of
//     n_group) whose two best biased scores sum highest (experts outside them
//     rank as 0); the weights are the unbiased s of the chosen experts,
//     divided by their sum (+1e-20) when norm_topk_prob, times
//     routed_scaling_factor.
//   kSoftmaxTopK (granitemoehybrid): the k largest logits, softmax over them.
// Ties are broken by the lower index (expert or group), as torch.topk does on
// the CPU, so equal router scores cannot make two runs choose differently.
// expert_ids of a token come in descending order of the ranked score.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"

namespace tessera {

enum class MoeRouteKind { kSigmoidBiased, kSoftmaxTopK };

struct MoeRouteParams {
  int64_t tokens = 0;    // T (may be 0)
  int64_t experts = 0;   // E >= 2
  int64_t top_k = 0;     // k in [1, E]
  MoeRouteKind kind = MoeRouteKind::kSoftmaxTopK;
  int64_t n_group = 1;       // kSigmoidBiased: divides E, with at least 2 experts per group
  int64_t topk_group = 1;    // kSigmoidBiased: groups kept, in [1, n_group]
  bool norm_topk_prob = true;          // kSigmoidBiased
  float routed_scaling_factor = 1.0f;  // kSigmoidBiased, finite
  const float* logits = nullptr;       // (T, E) fp32, row stride logits_stride
  int64_t logits_stride = 0;           // 0 means E
  const float* correction_bias = nullptr;  // (E) or null (zeros); kSigmoidBiased only
  int32_t* expert_ids = nullptr;       // (T, k) out
  float* expert_weights = nullptr;     // (T, k) out
};

// The contract's checks (kernels/moe_route.cc), which every backend runs first.
absl::Status CheckMoeRouteParams(const MoeRouteParams& p);

namespace cpu {
absl::Status MoeRoute(const MoeRouteParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream`: one warp per token,
// the same ranking and the same fp32 arithmetic as the CPU (sigmoid and exp
// through a double exp rounded to fp32, as glibc's expf rounds), so the ids
// match the CPU bit for bit, ties included. CUDA limit: experts <= 2048.
namespace cuda {
absl::Status MoeRoute(const MoeRouteParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
