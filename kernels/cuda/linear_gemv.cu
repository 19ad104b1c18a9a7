// The few-row bf16 GEMV of cuda::Linear (kernels/cuda/linear_gemv.h says how
// it works and when it runs).
#include "kernels/cuda/linear_gemv.h"

#include <cuda_bf16.h>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/sm80_ptx.cuh"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::FromFloat;
using cuda_launch::ToFloat;
using cuda_launch::WithDeviceType;
using params_check::StrideOr;

struct GemvTraits {
  static constexpr int kTileN = 16;  // output features a block: the mma's M
  static constexpr int kStepK = 32;  // k a warp step: 4 lanes × 8 elements
  static constexpr int kMaxWarps = 16;
};

// 16 bytes of W, streamed past L1 (every weight is read once a step).
__device__ __forceinline__ uint4 LoadStreaming16(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// The warps' accumulators summed in warp order, the bias and the accumulated
// y added in fp32, one rounding to Y on store.
template <typename Y>
__device__ __forceinline__ void GemvEpilogue(const LinearParams& p, int64_t y_stride, int64_t n0,
                                             const float (&acc)[4], float (*partial)[32 * 4]) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int64_t N = p.out_features;
#pragma unroll
  for (int j = 0; j < 4; ++j) partial[warp][lane * 4 + j] = acc[j];
  __syncthreads();
  for (int t = threadIdx.x; t < 32 * 4; t += blockDim.x) {  // (lane, accumulator) of the fragment
    const int t_lane = t / 4, j = t % 4;
    const int64_t n = n0 + t_lane / 4 + (j >= 2 ? 8 : 0);
    const int64_t r = 2 * (t_lane % 4) + (j & 1);
    if (n >= N || r >= p.rows) continue;
    float sum = 0.0f;
    for (int v = 0; v < warps; ++v) sum += partial[v][t];
    if (p.bias != nullptr) sum += p.bias[n];
    Y* y = static_cast<Y*>(p.y) + r * y_stride + n;
    if (p.accumulate) sum += ToFloat(*y);
    *y = FromFloat<Y>(sum);
  }
}

// Two mmas over one step's 16-byte pieces: k 0..3 and 4..7 of the lane's 8.
__device__ __forceinline__ void GemvMma(float (&acc)[4], const uint4& lo, const uint4& hi, const uint4& xv) {
  const uint32_t a0[4] = {lo.x, hi.x, lo.y, hi.y};
  const uint32_t a1[4] = {lo.z, hi.z, lo.w, hi.w};
  cuda_sm80::MmaBf16(acc, a0, xv.x, xv.y);
  cuda_sm80::MmaBf16(acc, a1, xv.z, xv.w);
}

// y (rows, N) [+]= x (rows, K) · Wᵀ (+ bias): one block a 16-feature tile
// (blockIdx.x), blockDim.x / 32 warps; batch b of warp w holds the steps
// (b·kUnroll + u)·warps + w, u < kUnroll, so the block's warps read
// neighbouring 64-byte pieces of the same 16 rows at any time.
template <typename Y, int kUnroll>
__global__ void __launch_bounds__(GemvTraits::kMaxWarps * 32)
    LinearGemvKernel(LinearParams p, int64_t x_stride, int64_t y_stride) {
  using T = GemvTraits;
  __shared__ float partial[T::kMaxWarps][32 * 4];  // (warps, lane · 4 accumulators)
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int g = lane / 4, q = lane % 4;  // fragment row (feature; x row) and k quarter
  const int64_t K = p.in_features, N = p.out_features;
  const int64_t n0 = blockIdx.x * int64_t{T::kTileN};
  const __nv_bfloat16* w = static_cast<const __nv_bfloat16*>(p.weight);
  const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x);
  // A W row past N or an x row past `rows` reads W's (x's) first row instead:
  // it only feeds outputs that are never stored.
  const __nv_bfloat16* w_lo = (n0 + g < N ? w + (n0 + g) * K : w) + q * 8;  // this lane's k quarter of a step
  const __nv_bfloat16* w_hi = (n0 + g + 8 < N ? w + (n0 + g + 8) * K : w) + q * 8;
  const __nv_bfloat16* x_g = (g < p.rows ? x + g * x_stride : x) + q * 8;
  const int64_t steps = (K + T::kStepK - 1) / T::kStepK;
  const int64_t batches = (steps + int64_t{warps} * kUnroll - 1) / (int64_t{warps} * kUnroll);
  // The first two batches' W lines on their way into L2 while the kernel
  // before finishes (safe whatever wrote W: see cuda_util.cuh).
#pragma unroll
  for (int u = 0; u < 2 * kUnroll; ++u) {
    const int64_t s = int64_t{u} * warps + warp;
    if (s < steps && q == 0) {  // a row's 64 bytes of a step lie in one 128-byte line
      cuda_launch::PrefetchL2(w_lo + s * T::kStepK);
      cuda_launch::PrefetchL2(w_hi + s * T::kStepK);
    }
  }
  cuda_launch::GridDependencyWait();  // before any load: see cuda_util.cuh
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // (g, 2q..2q+1) and (g + 8, 2q..2q+1): (feature, x row)
  // Two batches in flight: the next one's loads go out before this one's
  // mmas wait for theirs (ping-pong registers, no copies between them). A
  // lane past K reads its step-0 address again and zeroes what it got.
  uint4 lo[2][kUnroll], hi[2][kUnroll], xv[2][kUnroll];
  const uint4 zero = make_uint4(0, 0, 0, 0);
#define TESSERA_GEMV_LOAD(b, buf)                                                   \
  _Pragma("unroll") for (int u = 0; u < kUnroll; ++u) {                             \
    const int64_t s = ((b) * kUnroll + u) * warps + warp;                            \
    const int64_t k = s < steps && s * T::kStepK + q * 8 < K ? s * T::kStepK : 0;    \
    lo[buf][u] = LoadStreaming16(w_lo + k);                                          \
    hi[buf][u] = LoadStreaming16(w_hi + k);                                          \
    xv[buf][u] = __ldg(reinterpret_cast<const uint4*>(x_g + k));                     \
  }
#define TESSERA_GEMV_CONSUME(b, buf)                                                \
  _Pragma("unroll") for (int u = 0; u < kUnroll; ++u) {                             \
    const int64_t s = ((b) * kUnroll + u) * warps + warp;                            \
    const bool in = s < steps && s * T::kStepK + q * 8 < K;                          \
    GemvMma(acc, in ? lo[buf][u] : zero, in ? hi[buf][u] : zero, in ? xv[buf][u] : zero); \
  }
  TESSERA_GEMV_LOAD(0, 0)
  for (int64_t b = 0; b < batches; b += 2) {
    TESSERA_GEMV_LOAD(b + 1, 1)
    TESSERA_GEMV_CONSUME(b, 0)
    TESSERA_GEMV_LOAD(b + 2, 0)
    TESSERA_GEMV_CONSUME(b + 1, 1)
  }
#undef TESSERA_GEMV_LOAD
#undef TESSERA_GEMV_CONSUME
  GemvEpilogue<Y>(p, y_stride, n0, acc, partial);
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

int64_t Tiles(const LinearParams& p) { return (p.out_features + GemvTraits::kTileN - 1) / GemvTraits::kTileN; }

}  // namespace

bool LinearGemvApplies(const LinearParams& p) {
  return p.type == ElementType::kBF16 && p.rows >= 1 && p.rows <= kLinearGemvMaxRows && p.in_features % 8 == 0 &&
         StrideOr(p.x_stride, p.in_features) % 8 == 0 && Aligned16(p.x) && Aligned16(p.weight);
}

bool LinearGemvTakes(const LinearParams& p) {
  return LinearGemvApplies(p) && p.out_features < kLinearGemvCublasFeatures;
}

LinearGemvConfig LinearGemvDefaultConfig(const LinearParams& p) {
  // Two steps a batch and 8 warps a block read W fastest on the 8B decode
  // shapes (bench/decode_step_bench linear, 2026-12-04); 16 warps where the
  // tiles are too few to fill the device. Never more warps than steps of K.
  const int64_t steps = (p.in_features + GemvTraits::kStepK - 1) / GemvTraits::kStepK;
  LinearGemvConfig c;
  c.unroll = 2;
  c.warps = Tiles(p) >= 256 ? 8 : 16;
  while (c.warps > 1 && (c.warps / 2) * c.unroll >= steps) c.warps /= 2;
  return c;
}

absl::Status LinearGemv(const LinearParams& p, LinearGemvConfig config, CudaStream stream) {
  constexpr absl::string_view kOp = "Linear";
  if (!LinearGemvApplies(p)) return absl::InvalidArgumentError("Linear: the GEMV does not take this product");
  if (config.warps == 0 || config.unroll == 0) config = LinearGemvDefaultConfig(p);
  const int warps = config.warps, unroll = config.unroll;
  if (warps < 1 || warps > GemvTraits::kMaxWarps || (warps & (warps - 1)) != 0 || (unroll != 2 && unroll != 4)) {
    return absl::InvalidArgumentError(absl::StrCat("Linear: GEMV configuration warps ", warps, " unroll ", unroll));
  }
  const dim3 grid(static_cast<unsigned>(Tiles(p)));
  const int64_t x_stride = StrideOr(p.x_stride, p.in_features), y_stride = StrideOr(p.y_stride, p.out_features);
  const cudaError_t e = WithDeviceType(p.y_type, [&](auto y) {
    using Y = decltype(y);
    return cuda_launch::LaunchAfterPrior(unroll == 4 ? LinearGemvKernel<Y, 4> : LinearGemvKernel<Y, 2>, grid,
                                         warps * 32, 0, stream, p, x_stride, y_stride);
  });
  return FromCuda(kOp, e);
}

}  // namespace tessera::cuda
