// Device helpers shared by the CUDA kernels: the scalar functions the CPU
// reference applies (same formulas, full-precision expf/logf, no fast math), a
// block-wide sum, the widening of a stored operand (fp32 or bf16) to fp32 and
// the rounding back, 16-byte vectors of 8 elements (what a bandwidth-bound
// kernel moves per load), the one switch from ElementType to the device type,
// and launch-size arithmetic (flat grid-stride loops and row-wise 2-D grids),
// and programmatic dependent launch for the kernels of a decode step.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "kernels/element_type.h"

namespace tessera::cuda_launch {

__device__ __forceinline__ float DeviceSilu(float x) { return x / (1.0f + expf(-x)); }

// torch.nn.functional.softplus with its default threshold of 20.
__device__ __forceinline__ float DeviceSoftplus(float v) {
  return v > 20.0f ? v : log1pf(expf(v));
}

// A stored operand as the fp32 every kernel computes in (exact for bf16).
__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

// An fp32 result in the storage type T (bf16: round to nearest even).
template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// fn(T{}) with T the device type of `type` (float or __nv_bfloat16): the one
// switch of an entry point whose op reads or writes either storage type. The
// shared checks have rejected values outside the enum before a launch.
template <typename Fn>
decltype(auto) WithDeviceType(ElementType type, Fn&& fn) {
  switch (type) {
    case ElementType::kF32:
      return fn(float{});
    case ElementType::kBF16:
      return fn(__nv_bfloat16{});
  }
  return fn(float{});
}

// 8 consecutive elements of T as loaded: one 16-byte word for bf16, two for
// fp32. Loading the raw words first lets a kernel issue several rows' loads
// before it widens any of them.
template <typename T>
struct Raw8 {
  uint4 words[sizeof(T) / 2];
};

// The 8 elements at p, which is 16-byte aligned.
template <typename T>
__device__ __forceinline__ Raw8<T> LoadRaw8(const T* p) {
  Raw8<T> r;
#pragma unroll
  for (int i = 0; i < static_cast<int>(sizeof(T) / 2); ++i) r.words[i] = reinterpret_cast<const uint4*>(p)[i];
  return r;
}

// The 8 elements at p (16-byte aligned) = r, bit for bit.
template <typename T>
__device__ __forceinline__ void StoreRaw8(T* p, const Raw8<T>& r) {
#pragma unroll
  for (int i = 0; i < static_cast<int>(sizeof(T) / 2); ++i) reinterpret_cast<uint4*>(p)[i] = r.words[i];
}

__device__ __forceinline__ void Widen8(const Raw8<float>& r, float (&v)[8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = reinterpret_cast<const float*>(r.words)[i];
}
__device__ __forceinline__ void Widen8(const Raw8<__nv_bfloat16>& r, float (&v)[8]) {
  const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(r.words);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(pairs[i]);
    v[2 * i] = f.x;
    v[2 * i + 1] = f.y;
  }
}

// v = the 8 elements at p (16-byte aligned), widened to fp32.
template <typename T>
__device__ __forceinline__ void Load8(const T* p, float (&v)[8]) {
  Widen8(LoadRaw8(p), v);
}

// The 8 elements at p (16-byte aligned) = v, rounded to T.
__device__ __forceinline__ void Store8(float* p, const float (&v)[8]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ void Store8(__nv_bfloat16* p, const float (&v)[8]) {
  uint4 word;
  __nv_bfloat162* pairs = reinterpret_cast<__nv_bfloat162*>(&word);
#pragma unroll
  for (int i = 0; i < 4; ++i) pairs[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
  *reinterpret_cast<uint4*>(p) = word;
}

// Whether rows of T starting at p, `stride` elements apart, can be read in
// 16-byte vectors of 8 elements from any column that is a multiple of 8.
template <typename T>
inline bool RowsOfVec8(const void* p, int64_t stride) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0 && (stride * static_cast<int64_t>(sizeof(T))) % 16 == 0;
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of `v` over the block (blockDim.x a multiple of 32, <= 1024); every
// thread gets the result. `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = lane < warps ? scratch[lane] : 0.0f;
  return WarpSum(v);
}

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A grid for a row-wise loop over (rows, width): blockIdx.y strides over rows,
// blockIdx.x over column blocks of `threads`, each dimension capped.
inline dim3 RowGrid(int64_t rows, int64_t width, int threads) {
  const int64_t x = CeilDiv(width, threads);
  return dim3(static_cast<unsigned>(x < 1 ? 1 : (x < 1024 ? x : 1024)),
              static_cast<unsigned>(rows < 1 ? 1 : (rows < 65535 ? rows : 65535)));
}

// Blocks for a grid-stride loop over `count` elements.
inline unsigned GridFor(int64_t count, int threads) {
  const int64_t blocks = CeilDiv(count, threads);
  return static_cast<unsigned>(blocks < 65535 * 16 ? (blocks < 1 ? 1 : blocks) : 65535 * 16);
}

// Programmatic dependent launch (sm_90). A decode step is ~50 short kernels
// in a row; launched with LaunchAfterPrior, a kernel's blocks are scheduled
// while the kernel before it runs and wait in GridDependencyWait for it to
// finish, so the launch latency between them overlaps the work. Every kernel
// launched so calls GridDependencyWait first, before it reads or writes any
// memory: it then sees everything every earlier kernel of the stream wrote
// (the wait returns once the grid before it has completed and flushed, and
// that grid waited for its own predecessor in turn), exactly as in a plain
// launch. GridDependencyWait also lets the next kernel's blocks be scheduled
// (so at most one grid waits ahead of the one running). In a kernel launched
// plainly the wait returns at once. TESSERA_CUDA_PDL=0 in the environment
// launches plainly (to compare). Before the wait a kernel may only prefetch
// into L2 (PrefetchL2): the operands it will read, such as weights, come
// closer while the kernel before it finishes, and a prefetch cannot return
// stale data (L2 is where every write lands).
__device__ __forceinline__ void GridDependencyWait() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

// A hint: the 128-byte line at p into L2. No value comes back.
__device__ __forceinline__ void PrefetchL2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

inline bool ProgrammaticLaunchEnabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("TESSERA_CUDA_PDL");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// kernel<<<grid, block, smem_bytes, stream>>>(args...), its blocks allowed to
// start before the stream's previous kernel has finished (the kernel must
// begin with GridDependencyWait). Returns the launch's error.
template <typename... Params, typename... Args>
cudaError_t LaunchAfterPrior(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                             cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = ProgrammaticLaunchEnabled() ? 1 : 0;
  config.attrs = attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace tessera::cuda_launch
