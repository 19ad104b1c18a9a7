// Chunked SSD (Mamba-2 scan) on the GPU, the four steps of DESIGN.md as five
// launches over chunks of Q tokens (nc = ceil(L / Q) chunks, the last shorter):
//   1. ChunkCumsum   cum[t, h] = chunk-local inclusive cumsum of dt·A   (L, H)
//   2. ChunkCb       cb[c, g] = C_c · B_cᵀ, lower triangle              (nc, G, Q, Q)
//   3. ChunkState    states[c, h] = Σ_s exp(cum_last - cum_s)·dt_s · x_s ⊗ B_s,
//                    the chunk's final state from zero                  (nc, H, P, N)
//   4. StatePass     walks the chunks per state element: states[c] becomes the
//                    state entering chunk c; writes final_state and log_decay
//   5. ChunkOutput   y = (L ∘ cb) X + exp(cum_t) · (C_t · h_inᵀ) + D·x
// Steps 2, 3 and 5 are 64×64-tile products (tile_mma.cuh). Decays are
// exp(cum_t - cum_s) of chunk-local cumsums, never ratios of exps, with the
// same fp32 formulas as the CPU reference. Scratch is stream-ordered
// (cudaMallocAsync) and freed on the stream. The entry points run the shared
// checks (kernels/ssd_scan.cc) and launch: fp32 x, B, C here, bf16 on tensor
// cores in one fused kernel: wgmma (kernels/cuda/ssd_scan_sm90.cu) where it
// supports the shape (head_dim 64, state_size 64 or 128, aligned rows), else
// mma.sync (kernels/cuda/ssd_scan_bf16.cu).
#include "kernels/ssd_scan.h"

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/ssd_scan_bf16.cuh"
#include "kernels/cuda/ssd_scan_sm90.cuh"
#include "kernels/cuda/tile_mma.cuh"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::CeilDiv;
using cuda_launch::TileMma;

using Mma = TileMma;
constexpr int kT = Mma::kTile;
constexpr int kK = Mma::kDepth;

// Sizes with every stride resolved.
struct ScanShape {
  int64_t seq_len, heads, head_dim, groups, state_size, chunk_size, num_chunks;
  int64_t heads_per_group;
  int64_t x_stride, dt_stride, b_stride, c_stride;
};

__device__ __forceinline__ int64_t ChunkLen(const ScanShape& s, int64_t c) {
  const int64_t rest = s.seq_len - c * s.chunk_size;
  return rest < s.chunk_size ? rest : s.chunk_size;
}

// One thread per (chunk, head): the same sequential fp32 sum as the CPU.
__global__ void ChunkCumsumKernel(ScanShape s, const float* dt, const float* A, float* cum) {
  const int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (idx >= s.num_chunks * s.heads) return;
  const int64_t c = idx / s.heads;
  const int64_t h = idx - c * s.heads;
  const int64_t begin = c * s.chunk_size;
  const int64_t len = ChunkLen(s, c);
  const float a = A[h];
  float running = 0.0f;
  for (int64_t t = begin; t < begin + len; ++t) {
    running += dt[t * s.dt_stride + h] * a;
    cum[t * s.heads + h] = running;
  }
}

// grid (nc·G, t-tiles, s-tiles): cb[c, g, t, s] = C_t · B_s for s <= t.
__global__ void __launch_bounds__(Mma::kThreads) ChunkCbKernel(ScanShape s, const float* B,
                                                               const float* C, float* cb) {
  __shared__ float a_tile[kK][Mma::kPitch];  // C rows, (n, t)
  __shared__ float b_tile[kK][Mma::kPitch];  // B rows, (n, s)
  const int64_t c = blockIdx.x / s.groups;
  const int64_t g = blockIdx.x - c * s.groups;
  const int64_t t0 = int64_t{blockIdx.y} * kT;
  const int64_t s0 = int64_t{blockIdx.z} * kT;
  const int64_t len = ChunkLen(s, c);
  if (t0 >= len || s0 >= len || s0 > t0 + kT - 1) return;
  const int64_t begin = c * s.chunk_size;
  const float* c_rows = C + begin * s.c_stride + g * s.state_size;  // (len, N)
  const float* b_rows = B + begin * s.b_stride + g * s.state_size;  // (len, N)
  float acc[4][4] = {};
  for (int64_t n0 = 0; n0 < s.state_size; n0 += kK) {
    for (int e = threadIdx.x; e < kK * kT; e += Mma::kThreads) {
      const int k = e % kK;  // consecutive threads read consecutive n
      const int m = e / kK;
      const int64_t n = n0 + k;
      const bool n_ok = n < s.state_size;
      a_tile[k][m] = (n_ok && t0 + m < len) ? c_rows[(t0 + m) * s.c_stride + n] : 0.0f;
      b_tile[k][m] = (n_ok && s0 + m < len) ? b_rows[(s0 + m) * s.b_stride + n] : 0.0f;
    }
    __syncthreads();
    Mma::Accumulate(a_tile, b_tile, acc);
    __syncthreads();
  }
  float* out = cb + (blockIdx.x * s.chunk_size) * s.chunk_size;  // (Q, Q)
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const int64_t t = t0 + Mma::Row(i);
      const int64_t u = s0 + Mma::Col(j);
      if (t < len && u < len) out[t * s.chunk_size + u] = acc[i][j];
    }
  }
}

// grid (nc·H, p-tiles, n-tiles): states[c, h, p, n] = Σ_s w_s · x_s[p] · B_s[n],
// w_s = exp(cum_last - cum_s) · dt_s.
__global__ void __launch_bounds__(Mma::kThreads) ChunkStateKernel(ScanShape s, const float* x,
                                                                  const float* dt, const float* B,
                                                                  const float* cum,
                                                                  float* states) {
  __shared__ float a_tile[kK][Mma::kPitch];  // weighted x, (s, p)
  __shared__ float b_tile[kK][Mma::kPitch];  // B, (s, n)
  __shared__ float weight[kK];
  const int64_t c = blockIdx.x / s.heads;
  const int64_t h = blockIdx.x - c * s.heads;
  const int64_t g = h / s.heads_per_group;
  const int64_t p0 = int64_t{blockIdx.y} * kT;
  const int64_t n0 = int64_t{blockIdx.z} * kT;
  const int64_t begin = c * s.chunk_size;
  const int64_t len = ChunkLen(s, c);
  const float cum_last = cum[(begin + len - 1) * s.heads + h];
  float acc[4][4] = {};
  for (int64_t u0 = 0; u0 < len; u0 += kK) {
    if (threadIdx.x < kK) {
      const int64_t t = begin + u0 + threadIdx.x;
      weight[threadIdx.x] = u0 + threadIdx.x < len
                                ? expf(cum_last - cum[t * s.heads + h]) * dt[t * s.dt_stride + h]
                                : 0.0f;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < kK * kT; e += Mma::kThreads) {
      const int k = e / kT;  // consecutive threads read consecutive p / n
      const int m = e % kT;
      const int64_t t = begin + u0 + k;
      const bool t_ok = u0 + k < len;
      a_tile[k][m] = (t_ok && p0 + m < s.head_dim)
                         ? x[t * s.x_stride + h * s.head_dim + p0 + m] * weight[k]
                         : 0.0f;
      b_tile[k][m] = (t_ok && n0 + m < s.state_size)
                         ? B[t * s.b_stride + g * s.state_size + n0 + m]
                         : 0.0f;
    }
    __syncthreads();
    Mma::Accumulate(a_tile, b_tile, acc);
    __syncthreads();
  }
  float* out = states + blockIdx.x * s.head_dim * s.state_size;  // (P, N) of (c, h)
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const int64_t p = p0 + Mma::Row(i);
      const int64_t n = n0 + Mma::Col(j);
      if (p < s.head_dim && n < s.state_size) out[p * s.state_size + n] = acc[i][j];
    }
  }
}

// One thread per state element (h, p, n): running = exp(total_c)·running + S_c,
// leaving in states[c] the state entering chunk c. Reads initial_state before
// writing final_state, element by element, so the two may alias.
__global__ void StatePassKernel(ScanShape s, const float* cum, const float* initial_state,
                                float* states, float* final_state, float* log_decay) {
  const int64_t per_head = s.head_dim * s.state_size;
  const int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (idx >= s.heads * per_head) return;
  const int64_t h = idx / per_head;
  float running = initial_state == nullptr ? 0.0f : initial_state[idx];
  float decay_sum = 0.0f;
  for (int64_t c = 0; c < s.num_chunks; ++c) {
    const float total = cum[(c * s.chunk_size + ChunkLen(s, c) - 1) * s.heads + h];
    float* slot = states + c * s.heads * per_head + idx;
    const float chunk_state = *slot;
    *slot = running;
    running = expf(total) * running + chunk_state;
    decay_sum += total;
  }
  if (final_state != nullptr) final_state[idx] = running;
  if (log_decay != nullptr && idx - h * per_head == 0) log_decay[h] = decay_sum;
}

// grid (nc·H, t-tiles, p-tiles): y = (L ∘ cb) X + exp(cum_t)·C_t·h_inᵀ + D·x.
__global__ void __launch_bounds__(Mma::kThreads) ChunkOutputKernel(
    ScanShape s, const float* x, const float* dt, const float* C, const float* D,
    const float* cum, const float* cb, const float* states, bool first_state_is_zero, float* y) {
  __shared__ float a_tile[kK][Mma::kPitch];  // (s, t) decayed cb, then (n, t) decayed C
  __shared__ float b_tile[kK][Mma::kPitch];  // (s, p) x, then (n, p) h_in
  __shared__ float cum_t[kT];
  const int64_t c = blockIdx.x / s.heads;
  const int64_t h = blockIdx.x - c * s.heads;
  const int64_t g = h / s.heads_per_group;
  const int64_t t0 = int64_t{blockIdx.y} * kT;
  const int64_t p0 = int64_t{blockIdx.z} * kT;
  const int64_t begin = c * s.chunk_size;
  const int64_t len = ChunkLen(s, c);
  if (t0 >= len) return;
  for (int m = threadIdx.x; m < kT; m += Mma::kThreads) {
    cum_t[m] = t0 + m < len ? cum[(begin + t0 + m) * s.heads + h] : 0.0f;
  }
  __syncthreads();
  const float* cb_chunk = cb + ((c * s.groups + g) * s.chunk_size) * s.chunk_size;  // (Q, Q)
  float acc[4][4] = {};
  // Intra-chunk: keys s < min(len, t0 + kT).
  const int64_t s_end = len < t0 + kT ? len : t0 + kT;
  for (int64_t u0 = 0; u0 < s_end; u0 += kK) {
    for (int e = threadIdx.x; e < kK * kT; e += Mma::kThreads) {
      const int k = e % kK;  // consecutive threads read consecutive s of one cb row
      const int m = e / kK;
      const int64_t t = t0 + m;
      const int64_t u = u0 + k;
      float v = 0.0f;
      if (t < len && u <= t) {
        const int64_t tok = begin + u;
        v = cb_chunk[t * s.chunk_size + u] * expf(cum_t[m] - cum[tok * s.heads + h]) *
            dt[tok * s.dt_stride + h];
      }
      a_tile[k][m] = v;
    }
    for (int e = threadIdx.x; e < kK * kT; e += Mma::kThreads) {
      const int k = e / kT;
      const int m = e % kT;
      const int64_t u = u0 + k;
      b_tile[k][m] = (u < len && p0 + m < s.head_dim)
                         ? x[(begin + u) * s.x_stride + h * s.head_dim + p0 + m]
                         : 0.0f;
    }
    __syncthreads();
    Mma::Accumulate(a_tile, b_tile, acc);
    __syncthreads();
  }
  // The state entering the chunk: exp(cum_t) · C_t · h_inᵀ.
  if (!(c == 0 && first_state_is_zero)) {
    const float* h_in = states + (c * s.heads + h) * s.head_dim * s.state_size;  // (P, N)
    const float* c_rows = C + begin * s.c_stride + g * s.state_size;              // (len, N)
    for (int64_t n0 = 0; n0 < s.state_size; n0 += kK) {
      for (int e = threadIdx.x; e < kK * kT; e += Mma::kThreads) {
        const int k = e % kK;  // consecutive threads read consecutive n
        const int m = e / kK;
        const int64_t n = n0 + k;
        const bool n_ok = n < s.state_size;
        a_tile[k][m] =
            (n_ok && t0 + m < len) ? c_rows[(t0 + m) * s.c_stride + n] * expf(cum_t[m]) : 0.0f;
        b_tile[k][m] = (n_ok && p0 + m < s.head_dim) ? h_in[(p0 + m) * s.state_size + n] : 0.0f;
      }
      __syncthreads();
      Mma::Accumulate(a_tile, b_tile, acc);
      __syncthreads();
    }
  }
  const float skip = D == nullptr ? 0.0f : D[h];
  const int64_t y_stride = s.heads * s.head_dim;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const int64_t t = t0 + Mma::Row(i);
      const int64_t p = p0 + Mma::Col(j);
      if (t < len && p < s.head_dim) {
        const int64_t tok = begin + t;
        y[tok * y_stride + h * s.head_dim + p] =
            acc[i][j] + skip * x[tok * s.x_stride + h * s.head_dim + p];
      }
    }
  }
}

// SsdAddInitialState: one thread per head, the CPU's sequential global cumsum.
__global__ void GlobalCumsumKernel(int64_t seq_len, int64_t heads, const float* dt,
                                   int64_t dt_stride, const float* A, float* cum) {
  const int64_t h = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (h >= heads) return;
  const float a = A[h];
  float running = 0.0f;
  for (int64_t t = 0; t < seq_len; ++t) {
    running += dt[t * dt_stride + h] * a;
    cum[t * heads + h] = running;
  }
}

// grid (t-tiles·H, p-tiles): y[t, h] += exp(cum_t) · C_t · h_inᵀ.
__global__ void __launch_bounds__(Mma::kThreads) InitialStateOutputKernel(
    SsdAddInitialStateParams p, int64_t dt_stride, int64_t c_stride, const float* cum) {
  __shared__ float a_tile[kK][Mma::kPitch];  // (n, t)
  __shared__ float b_tile[kK][Mma::kPitch];  // (n, p)
  __shared__ float decay[kT];
  const int64_t h = blockIdx.x % p.num_heads;
  const int64_t t0 = (blockIdx.x / p.num_heads) * int64_t{kT};
  const int64_t p0 = int64_t{blockIdx.y} * kT;
  const int64_t g = h / (p.num_heads / p.num_groups);
  const int64_t n_size = p.state_size;
  for (int m = threadIdx.x; m < kT; m += Mma::kThreads) {
    decay[m] = t0 + m < p.seq_len ? expf(cum[(t0 + m) * p.num_heads + h]) : 0.0f;
  }
  __syncthreads();
  const float* h_in = p.initial_state + h * p.head_dim * n_size;  // (P, N)
  float acc[4][4] = {};
  for (int64_t n0 = 0; n0 < n_size; n0 += kK) {
    for (int e = threadIdx.x; e < kK * kT; e += Mma::kThreads) {
      const int k = e % kK;
      const int m = e / kK;
      const int64_t n = n0 + k;
      const bool n_ok = n < n_size;
      a_tile[k][m] =
          (n_ok && t0 + m < p.seq_len) ? p.C[(t0 + m) * c_stride + g * n_size + n] * decay[m] : 0.0f;
      b_tile[k][m] = (n_ok && p0 + m < p.head_dim) ? h_in[(p0 + m) * n_size + n] : 0.0f;
    }
    __syncthreads();
    Mma::Accumulate(a_tile, b_tile, acc);
    __syncthreads();
  }
  const int64_t y_stride = p.num_heads * p.head_dim;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const int64_t t = t0 + Mma::Row(i);
      const int64_t q = p0 + Mma::Col(j);
      if (t < p.seq_len && q < p.head_dim) p.y[t * y_stride + h * p.head_dim + q] += acc[i][j];
    }
  }
}

// final += exp(Σ dt·A) · h_in, one thread per state element.
__global__ void InitialStateFinalKernel(SsdAddInitialStateParams p, const float* cum) {
  const int64_t per_head = p.head_dim * p.state_size;
  const int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (idx >= p.num_heads * per_head) return;
  const int64_t h = idx / per_head;
  const float total = p.seq_len == 0 ? 0.0f : cum[(p.seq_len - 1) * p.num_heads + h];
  p.final_state[idx] += expf(total) * p.initial_state[idx];
}

unsigned Blocks(int64_t count, int threads) { return static_cast<unsigned>(CeilDiv(count, threads)); }

// Frees stream-ordered scratch on every path out of a launcher.
struct ScratchBuffers {
  cudaStream_t stream;
  float* ptr[3] = {nullptr, nullptr, nullptr};
  ~ScratchBuffers() {
    for (float* q : ptr) {
      if (q != nullptr) cudaFreeAsync(q, stream);
    }
  }
};

// fp32 x, B, C (p.type == kF32).
cudaError_t LaunchSsdScan(const SsdScanParams& p, cudaStream_t stream) {
  const auto* x = static_cast<const float*>(p.x);
  const auto* B = static_cast<const float*>(p.B);
  const auto* C = static_cast<const float*>(p.C);
  ScanShape s;
  s.seq_len = p.seq_len;
  s.heads = p.num_heads;
  s.head_dim = p.head_dim;
  s.groups = p.num_groups;
  s.state_size = p.state_size;
  s.chunk_size = p.chunk_size < p.seq_len ? p.chunk_size : (p.seq_len > 0 ? p.seq_len : 1);
  s.num_chunks = p.seq_len == 0 ? 0 : CeilDiv(p.seq_len, s.chunk_size);
  s.heads_per_group = p.num_heads / p.num_groups;
  const int64_t gn = p.num_groups * p.state_size;
  s.x_stride = p.x_stride == 0 ? p.num_heads * p.head_dim : p.x_stride;
  s.dt_stride = p.dt_stride == 0 ? p.num_heads : p.dt_stride;
  s.b_stride = p.b_stride == 0 ? gn : p.b_stride;
  s.c_stride = p.c_stride == 0 ? gn : p.c_stride;
  const int64_t state_elems = s.heads * s.head_dim * s.state_size;
  const int64_t t_tiles = CeilDiv(s.chunk_size, kT);
  if (s.num_chunks * s.heads > INT32_MAX || t_tiles > 65535 ||
      CeilDiv(s.head_dim, kT) > 65535 || CeilDiv(s.state_size, kT) > 65535) {
    return cudaErrorInvalidValue;
  }

  ScratchBuffers scratch{stream};
  float*& cum = scratch.ptr[0];     // (L, H)
  float*& cb = scratch.ptr[1];      // (nc, G, Q, Q)
  float*& states = scratch.ptr[2];  // (nc, H, P, N)
  cudaError_t e = cudaSuccess;
  if (s.num_chunks > 0) {
    if ((e = cudaMallocAsync(reinterpret_cast<void**>(&cum),
                             sizeof(float) * s.seq_len * s.heads, stream)) != cudaSuccess ||
        (e = cudaMallocAsync(reinterpret_cast<void**>(&cb),
                             sizeof(float) * s.num_chunks * s.groups * s.chunk_size * s.chunk_size,
                             stream)) != cudaSuccess ||
        (e = cudaMallocAsync(reinterpret_cast<void**>(&states),
                             sizeof(float) * s.num_chunks * state_elems, stream)) != cudaSuccess) {
      return e;
    }
    ChunkCumsumKernel<<<Blocks(s.num_chunks * s.heads, 128), 128, 0, stream>>>(s, p.dt, p.A, cum);
    ChunkCbKernel<<<dim3(static_cast<unsigned>(s.num_chunks * s.groups), t_tiles, t_tiles),
                    Mma::kThreads, 0, stream>>>(s, B, C, cb);
    ChunkStateKernel<<<dim3(static_cast<unsigned>(s.num_chunks * s.heads),
                            CeilDiv(s.head_dim, kT), CeilDiv(s.state_size, kT)),
                       Mma::kThreads, 0, stream>>>(s, x, p.dt, B, cum, states);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  StatePassKernel<<<Blocks(state_elems, 256), 256, 0, stream>>>(
      s, cum, p.initial_state, states, p.final_state, p.log_decay);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  if (s.num_chunks > 0) {
    ChunkOutputKernel<<<dim3(static_cast<unsigned>(s.num_chunks * s.heads), t_tiles,
                             CeilDiv(s.head_dim, kT)),
                        Mma::kThreads, 0, stream>>>(s, x, p.dt, C, p.D, cum, cb, states,
                                                    p.initial_state == nullptr, p.y);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t LaunchSsdAddInitialState(const SsdAddInitialStateParams& p, cudaStream_t stream) {
  const int64_t gn = p.num_groups * p.state_size;
  const int64_t dt_stride = p.dt_stride == 0 ? p.num_heads : p.dt_stride;
  const int64_t c_stride = p.c_stride == 0 ? gn : p.c_stride;
  if (CeilDiv(p.seq_len, kT) * p.num_heads > INT32_MAX || CeilDiv(p.head_dim, kT) > 65535) {
    return cudaErrorInvalidValue;
  }
  ScratchBuffers scratch{stream};
  float*& cum = scratch.ptr[0];  // (L, H)
  cudaError_t e = cudaSuccess;
  if (p.seq_len > 0) {
    if ((e = cudaMallocAsync(reinterpret_cast<void**>(&cum),
                             sizeof(float) * p.seq_len * p.num_heads, stream)) != cudaSuccess) {
      return e;
    }
    GlobalCumsumKernel<<<Blocks(p.num_heads, 64), 64, 0, stream>>>(p.seq_len, p.num_heads, p.dt,
                                                                  dt_stride, p.A, cum);
    InitialStateOutputKernel<<<dim3(static_cast<unsigned>(CeilDiv(p.seq_len, kT) * p.num_heads),
                                    CeilDiv(p.head_dim, kT)),
                               Mma::kThreads, 0, stream>>>(p, dt_stride, c_stride, cum);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  if (p.final_state != nullptr) {
    InitialStateFinalKernel<<<Blocks(p.num_heads * p.head_dim * p.state_size, 256), 256, 0,
                              stream>>>(p, cum);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  return cudaSuccess;
}

// The wgmma kernel wherever it supports the call, unless TESSERA_SSD_KERNEL is
// "mma" (benchmarks and tests compare the two bf16 kernels in one process).
bool TakesSm90Kernel(const SsdScanParams& p) {
  const char* name = std::getenv("TESSERA_SSD_KERNEL");
  return (name == nullptr || std::strcmp(name, "mma") != 0) && cuda_ssd::SsdScanSm90Supports(p);
}

}  // namespace

absl::Status SsdScan(const SsdScanParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "SsdScan";
  RETURN_IF_ERROR(CheckSsdScanParams(p));
  switch (p.type) {
    case ElementType::kF32:
      return FromCuda(kOp, LaunchSsdScan(p, stream));
    case ElementType::kBF16:
      RETURN_IF_ERROR(cuda_ssd::CheckSsdScanBf16Supported(p));
      if (TakesSm90Kernel(p)) return FromCuda(kOp, cuda_ssd::LaunchSsdScanSm90(p, stream));
      return FromCuda(kOp, cuda_ssd::LaunchSsdScanBf16(p, stream));
  }
  return absl::InternalError("SsdScan: unhandled type");  // rejected by the checks
}

absl::Status SsdAddInitialState(const SsdAddInitialStateParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckSsdAddInitialStateParams(p));
  if (p.seq_len == 0 && p.final_state == nullptr) return absl::OkStatus();
  return FromCuda("SsdAddInitialState", LaunchSsdAddInitialState(p, stream));
}

}  // namespace tessera::cuda
