// MoeRoute on the device: one warp per token. The CPU reference ranks with a
// stable sort (score descending, index ascending); a warp gets the same order
// by k rounds of an argmax over the candidates that rank strictly after the
// previous pick, lanes striding over the experts and a shuffle reduction
// breaking ties by the lower index. Nothing is marked taken, so each round
// reads the scores only. The arithmetic is the CPU's, in the CPU's order:
// sigmoid as 1 / (1 + exp(-x)) in fp32 with exp through double rounded to
// fp32 (glibc's expf is correctly rounded in practice, CUDA's expf is not),
// the weight sums accumulated pick by pick. That is what makes the ids equal
// bit for bit, ties included, and the weights equal to the last bit in practice.
#include "kernels/moe_route.h"

#include <cuda_runtime.h>

#include <cfloat>
#include <climits>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/host_util.h"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using params_check::ParamError;
using params_check::StrideOr;

constexpr int kMaxExperts = 2048;

// exp(x) as glibc's expf gives it: the double exp rounded once to fp32.
__device__ __forceinline__ float ExpLikeHost(float x) {
  return static_cast<float>(exp(static_cast<double>(x)));
}

struct Pick {
  float value;
  int index;  // INT_MAX: none
};

// a ranks before b: larger value, or equal value and lower index.
__device__ __forceinline__ bool RanksBefore(float av, int ai, float bv, int bi) {
  return av > bv || (av == bv && ai < bi);
}

__device__ __forceinline__ Pick WarpBest(Pick p) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, p.value, offset);
    const int i = __shfl_xor_sync(0xffffffffu, p.index, offset);
    if (RanksBefore(v, i, p.value, p.index)) p = {v, i};
  }
  return p;
}

// The best of values[0, n) that ranks strictly after `after` (after.index < 0:
// no bound), over the warp; every lane gets it.
template <typename ValueAt>
__device__ __forceinline__ Pick NextBest(int n, Pick after, ValueAt value_at) {
  const int lane = threadIdx.x & 31;
  Pick best{-INFINITY, INT_MAX};
  for (int i = lane; i < n; i += 32) {
    const float v = value_at(i);
    const bool eligible = after.index < 0 || RanksBefore(after.value, after.index, v, i);
    if (eligible && RanksBefore(v, i, best.value, best.index)) best = {v, i};
  }
  return WarpBest(best);
}

// Shared memory of one warp: scores (E), choice (E), group scores (n_group <= E/2), picks (k <= E).
__host__ __device__ constexpr int WarpSharedFloats(int experts) { return 3 * experts + experts / 2 + 1; }

__global__ void MoeRouteKernel(MoeRouteParams p, int64_t stride) {
  extern __shared__ float shared[];
  const int warps = blockDim.x / 32;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int64_t t = int64_t{blockIdx.x} * warps + warp;
  if (t >= p.tokens) return;
  const int E = static_cast<int>(p.experts), k = static_cast<int>(p.top_k);
  float* scores = shared + warp * WarpSharedFloats(E);  // (E)
  float* choice = scores + E;                            // (E)
  int* picks = reinterpret_cast<int*>(choice + E);       // (k)
  float* group_scores = choice + 2 * E;                  // (n_group)
  const float* logits = p.logits + t * stride;           // (E)
  int32_t* ids = p.expert_ids + t * p.top_k;             // (k)
  float* weights = p.expert_weights + t * p.top_k;       // (k)

  switch (p.kind) {
    case MoeRouteKind::kSigmoidBiased: {
      for (int e = lane; e < E; e += 32) {
        const float s = 1.0f / (1.0f + ExpLikeHost(-logits[e]));
        scores[e] = s;
        choice[e] = s + (p.correction_bias != nullptr ? p.correction_bias[e] : 0.0f);
      }
      __syncwarp();
      const int n_group = static_cast<int>(p.n_group), per_group = E / n_group;
      for (int g = lane; g < n_group; g += 32) {  // the sum of each group's two best biased scores
        float first = -INFINITY, second = -INFINITY;
        for (int i = 0; i < per_group; ++i) {
          const float v = choice[g * per_group + i];
          if (v > first) {
            second = first;
            first = v;
          } else if (v > second) {
            second = v;
          }
        }
        group_scores[g] = first + second;
      }
      __syncwarp();
      // The topk_group-th group in rank order; a group is kept iff it ranks no later.
      Pick last{0.0f, -1};
      for (int r = 0; r < p.topk_group; ++r) {
        last = NextBest(n_group, last, [&](int g) { return group_scores[g]; });
      }
      auto masked = [&](int e) {
        const int g = e / per_group;
        const float gs = group_scores[g];
        const bool kept = !RanksBefore(last.value, last.index, gs, g);
        return kept ? choice[e] : 0.0f;  // transformers masks with 0.0, not -inf
      };
      Pick pick{0.0f, -1};
      float sum = 0.0f;
      for (int j = 0; j < k; ++j) {
        pick = NextBest(E, pick, masked);
        if (lane == 0) picks[j] = pick.index;
        sum += scores[pick.index];
      }
      __syncwarp();
      for (int j = lane; j < k; j += 32) {
        const int e = picks[j];
        float w = scores[e];
        if (p.norm_topk_prob) w = w / (sum + 1e-20f);
        ids[j] = e;
        weights[j] = w * p.routed_scaling_factor;
      }
      break;
    }
    case MoeRouteKind::kSoftmaxTopK: {
      Pick pick{0.0f, -1};
      float max = 0.0f, sum = 0.0f;
      for (int j = 0; j < k; ++j) {
        pick = NextBest(E, pick, [&](int e) { return logits[e]; });
        if (lane == 0) picks[j] = pick.index;
        if (j == 0) max = pick.value;
        sum += ExpLikeHost(pick.value - max);
      }
      __syncwarp();
      for (int j = lane; j < k; j += 32) {
        const int e = picks[j];
        ids[j] = e;
        weights[j] = ExpLikeHost(logits[e] - max) / sum;
      }
      break;
    }
  }
}

}  // namespace

absl::Status MoeRoute(const MoeRouteParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "MoeRoute";
  RETURN_IF_ERROR(CheckMoeRouteParams(p));
  if (p.experts > kMaxExperts) {
    return ParamError(kOp, absl::StrCat("experts must be <= ", kMaxExperts, " on CUDA. Given: ", p.experts));
  }
  if (p.tokens == 0) return absl::OkStatus();
  const int E = static_cast<int>(p.experts);
  const int warps = E <= 256 ? 4 : 1;
  const size_t shared = sizeof(float) * WarpSharedFloats(E) * warps;
  const int64_t blocks = (p.tokens + warps - 1) / warps;
  if (blocks > INT_MAX) return ParamError(kOp, absl::StrCat("tokens too many for one launch: ", p.tokens));
  MoeRouteKernel<<<static_cast<unsigned>(blocks), 32 * warps, shared, stream>>>(
      p, StrideOr(p.logits_stride, p.experts));
  return FromCuda(kOp, cudaGetLastError());
}

}  // namespace tessera::cuda
