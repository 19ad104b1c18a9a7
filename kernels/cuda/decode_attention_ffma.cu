// DecodeAttention on CUDA cores, for the shapes the split-KV kernels do not
// take (head_dim other than 64 and 128, such as the tiny test models' 16;
// K/V rows that are not 16-byte aligned; Hq/Hkv > 128). One warp per
// (request, query head): lane l holds columns l, l + 32, ... of q and of the
// running output; each key's score is a warp sum, then the online softmax
// (running max m and sum l, the output rescaled by exp(m_old - m_new)) takes
// it, in fp32 with full-precision expf as the CPU reference. One pass over the
// keys, every K/V row read once per query head: correct for any shape, not
// the bandwidth path.
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/decode_attention.h"
#include "kernels/params_check_util.h"

namespace tessera::cuda_decode {
namespace {

using cuda_launch::CeilDiv;
using cuda_launch::ToFloat;
using cuda_launch::WarpSum;
using cuda_launch::WithDeviceType;
using params_check::StrideOr;

constexpr int kFfmaWarps = 4;

struct FfmaStrides {
  int64_t q, k, v;  // elements: between requests (q), between tokens (k, v)
};

// blockIdx.x: kFfmaWarps query heads, blockIdx.y: the request. kCols · 32 >= head_dim.
template <typename T, int kCols>
__global__ void __launch_bounds__(kFfmaWarps * 32) DecodeAttentionFfmaKernel(DecodeAttentionParams p, FfmaStrides s) {
  const int lane = threadIdx.x % 32;
  const int64_t head = int64_t{blockIdx.x} * kFfmaWarps + threadIdx.x / 32, r = blockIdx.y;
  if (head >= p.num_q_heads) return;
  const int64_t d_size = p.head_dim;
  const int64_t kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const T* q = static_cast<const T*>(p.q) + r * s.q + head * d_size;  // (D)
  const int64_t len = p.kv_lens[r] < 0 ? 0 : p.kv_lens[r];
  const T* k = len > 0 ? static_cast<const T*>(p.k[r]) + kv_head * d_size : nullptr;  // (len, D), stride s.k
  const T* v = len > 0 ? static_cast<const T*>(p.v[r]) + kv_head * d_size : nullptr;  // (len, D), stride s.v
  float qv[kCols], o[kCols];
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int64_t d = lane + 32 * c;
    qv[c] = d < d_size ? ToFloat(q[d]) : 0.0f;
    o[c] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = 0; j < len; ++j) {
    float dot = 0.0f;
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const int64_t d = lane + 32 * c;
      if (d < d_size) dot += qv[c] * ToFloat(k[j * s.k + d]);
    }
    const float score = WarpSum(dot) * p.scale;
    const float new_m = fmaxf(m, score);
    const float rescale = expf(m - new_m);  // 0 while m is -inf
    const float weight = expf(score - new_m);
    l = l * rescale + weight;
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const int64_t d = lane + 32 * c;
      if (d < d_size) o[c] = o[c] * rescale + weight * ToFloat(v[j * s.v + d]);
    }
    m = new_m;
  }
  float* out = p.out + (r * p.num_q_heads + head) * d_size;  // (D)
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int64_t d = lane + 32 * c;
    if (d < d_size) out[d] = len > 0 ? o[c] / l : 0.0f;
  }
  if (lane == 0 && p.lse != nullptr) p.lse[r * p.num_q_heads + head] = len > 0 ? m + logf(l) : -INFINITY;
}

template <typename T, int kCols>
cudaError_t LaunchFfma(const DecodeAttentionParams& p, const FfmaStrides& s, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(CeilDiv(p.num_q_heads, kFfmaWarps)), static_cast<unsigned>(p.batch));
  DecodeAttentionFfmaKernel<T, kCols><<<grid, kFfmaWarps * 32, 0, stream>>>(p, s);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchDecodeAttentionFfma(const DecodeAttentionParams& p, cudaStream_t stream) {
  if (p.batch == 0) return cudaSuccess;
  const FfmaStrides s{StrideOr(p.q_stride, p.num_q_heads * p.head_dim),
                      StrideOr(p.k_stride, p.num_kv_heads * p.head_dim),
                      StrideOr(p.v_stride, p.num_kv_heads * p.head_dim)};
  return WithDeviceType(p.type, [&](auto t) {
    using T = decltype(t);
    if (p.head_dim <= 32) return LaunchFfma<T, 1>(p, s, stream);
    if (p.head_dim <= 64) return LaunchFfma<T, 2>(p, s, stream);
    if (p.head_dim <= 128) return LaunchFfma<T, 4>(p, s, stream);
    if (p.head_dim <= 256) return LaunchFfma<T, 8>(p, s, stream);
    return cudaErrorInvalidValue;  // DecodeAttention's limit: UNIMPLEMENTED before a launch
  });
}

}  // namespace tessera::cuda_decode
