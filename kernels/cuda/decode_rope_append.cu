// DecodeRopeAppend: one CTA per request. Its threads rotate the request's q
// and k heads pair by pair (RotatePair, as Rope does, so the bits match a
// per-request Rope), then, after a barrier, copy its k and v rows into its
// caches at row kv_lens[r] - 1. Rows are a few KB: the launch, not the
// bytes, is what this op saves (one launch a layer for the whole batch
// instead of four a request).
#include "kernels/decode_rope_append.h"

#include <vector>

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/rope_rotate.cuh"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::RotatePair;
using cuda_launch::WithDeviceType;

constexpr int kThreads = 128;

struct Strides {
  int64_t q, k, v, cache;  // elements, resolved
};

template <typename T>
__global__ void DecodeRopeAppendKernel(DecodeRopeAppendParams p, Strides s) {
  cuda_launch::GridDependencyWait();  // first: see cuda_util.cuh
  const int64_t r = blockIdx.x;
  T* q = static_cast<T*>(p.q) + r * s.q;  // (Hq, D)
  T* k = static_cast<T*>(p.k) + r * s.k;  // (Hkv, D)
  const int64_t half = p.rotary_dim / 2;
  if (half > 0) {
    const float position = static_cast<float>(p.positions[r]);
    const int64_t pairs = (p.num_q_heads + p.num_kv_heads) * half;
    for (int64_t idx = threadIdx.x; idx < pairs; idx += blockDim.x) {
      const int64_t i = idx % half;
      const int64_t h = idx / half;
      T* head = h < p.num_q_heads ? q + h * p.head_dim : k + (h - p.num_q_heads) * p.head_dim;
      RotatePair(head, i, half, position, p.inv_freq[i]);
    }
    __syncthreads();  // the k row is rotated before it is appended
  }
  const int64_t row = p.kv_lens[r] - 1;
  const int64_t width = p.num_kv_heads * p.head_dim;
  const T* v = static_cast<const T*>(p.v) + r * s.v;
  T* k_cache = static_cast<T*>(p.k_cache[r]) + row * s.cache;  // (Hkv·D)
  T* v_cache = static_cast<T*>(p.v_cache[r]) + row * s.cache;  // (Hkv·D)
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
    k_cache[c] = k[c];
    v_cache[c] = v[c];
  }
}

}  // namespace

absl::Status DecodeRopeAppend(const DecodeRopeAppendParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "DecodeRopeAppend";
  RETURN_IF_ERROR(CheckDecodeRopeAppendParams(p));
  if (p.batch == 0) return absl::OkStatus();
  if (p.rotary_dim > 0 && p.inv_freq == nullptr) {
    return absl::InvalidArgumentError("DecodeRopeAppend: inv_freq must be set on CUDA when rotary_dim > 0");
  }
  if (p.batch > 65535 * 1024) return absl::InvalidArgumentError("DecodeRopeAppend: batch too large");
  const int64_t kv_width = p.num_kv_heads * p.head_dim;
  const Strides s{p.q_stride == 0 ? p.num_q_heads * p.head_dim : p.q_stride, p.k_stride == 0 ? kv_width : p.k_stride,
                  p.v_stride == 0 ? kv_width : p.v_stride, p.cache_stride == 0 ? kv_width : p.cache_stride};
  return FromCuda(kOp, WithDeviceType(p.type, [&](auto t) {
                    return cuda_launch::LaunchAfterPrior(DecodeRopeAppendKernel<decltype(t)>,
                                                         static_cast<unsigned>(p.batch), kThreads, 0,
                                                         static_cast<cudaStream_t>(stream), p, s);
                  }));
}

}  // namespace tessera::cuda
