// Attention forward. Which kernel serves a request (ChooseKernel, TakesSplitKv):
//   1. Decode-shaped requests (q_len <= 16) that the split-KV kernels take
//      (kernels/cuda/decode_attention.cu: bf16 or fp32, head_dim 64 or 128,
//      q_len·Hq/Hkv <= 128, 16-byte-aligned K/V rows) go there, given the
//      workspace it asks for (cuda::AttentionWorkspaceBytes; none when one
//      split covers the keys). Why: the kernels of rules 2 and 3 give each CTA
//      a tile of query rows of one head, so a call with a few rows runs only
//      Hq CTAs (32 of the H200's 132 SMs for the 8B model), each streaming the
//      whole K/V of its KV head (every K/V row read Hq/Hkv times), and decode
//      is nothing but that stream. Split-KV fills every SM with key ranges and
//      reads each K/V row once per 64 query rows of a KV head's group. 16 rows
//      is the most a decode step asks (a batch of queries, a speculative
//      draft) and, at GQA 4, still one 64-row tile per group; prefill chunks
//      have hundreds of rows: enough CTAs, and enough reuse of each K/V tile
//      for the flash kernel's 128-row MMAs.
//   2. bf16 requests with head_dim 64 or 128 and 16-byte-aligned rows go to the
//      Hopper tensor-core kernel (kernels/cuda/flash_attention_sm90.cu,
//      FlashAttention-3 style).
//   3. Everything else runs this file's CUDA-core kernel.
//
// The CUDA-core kernel: fp32 accumulation, one block per (tile of kBM query
// rows, query head): Q stays in shared memory, K/V stream through it kBN keys
// at a time, and an online softmax (running row max m, running sum l, output
// rescaled by exp(m_old - m_new)) keeps one pass over the keys. Key tiles past the tile's
// last visible key (causal by global position) are never loaded. The element
// type T of q/k/v (AttentionParams::type) is float or __nv_bfloat16: one
// kernel, so both support every feature of AttentionParams alike, whatever the
// tensor-core kernel does not take. Operands are widened to fp32 as they are
// staged, by scalar loads (bf16 rows at odd strides are only 2-byte aligned);
// everything after the load is fp32.
//
// Threads: 256 as 16×16; thread (ty, tx) owns query rows ty + 16i, score
// columns tx + 16j and output columns tx + 16d. Shared rows are padded by one
// float so those reads are conflict-free; row reductions are shuffles across
// the 16 lanes sharing ty.
//
// The entry points run the shared checks (kernels/attention.cc), then the
// limits of these kernels (largest head_dim, grid size: UNIMPLEMENTED), and
// launch the first kernel that the rules above give.
#include "kernels/attention.h"

#include <cuda_bf16.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/decode_attention.h"
#include "kernels/cuda/flash_attention_sm90.h"
#include "kernels/cuda/host_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::CeilDiv;
using cuda_launch::ToFloat;

// Largest head_dim the attention kernels instantiate (fp32 and bf16 alike).
constexpr int64_t kAttentionMaxHeadDim = 256;

template <int kD_, int kBM_, int kBN_>
struct AttentionTraits {
  static constexpr int kD = kD_;    // head_dim rounded up; padding columns hold 0
  static constexpr int kBM = kBM_;  // query rows per block
  static constexpr int kBN = kBN_;  // keys per step
  static constexpr int kThreads = 256;
  static constexpr int kRows = kBM / 16;  // per thread
  static constexpr int kCols = kBN / 16;
  static constexpr int kOutCols = kD / 16;
  static constexpr int kPitch = kD + 1;
  static constexpr int kPPitch = kBN + 1;
  static constexpr size_t kSmemBytes =
      sizeof(float) * (size_t{kBM} * kPitch + 2 * size_t{kBN} * kPitch + size_t{kBM} * kPPitch);
  static_assert(kD % 32 == 0 && kBM % 16 == 0 && kBN % 16 == 0);
  static_assert(kSmemBytes <= 227 * 1024, "over Hopper's opt-in shared memory per block");
};

struct AttentionArgs {
  AttentionParams p;  // sizes, positions, outputs
  const void* q;
  const void* k;
  const void* v;
  int64_t q_stride, k_stride, v_stride;
};

template <typename T, typename Traits>
__global__ void __launch_bounds__(Traits::kThreads) AttentionKernel(AttentionArgs args) {
  constexpr int kD = Traits::kD, kBM = Traits::kBM, kBN = Traits::kBN;
  constexpr int kPitch = Traits::kPitch, kPPitch = Traits::kPPitch;
  extern __shared__ float smem[];
  float* q_tile = smem;                     // (kBM, kPitch)
  float* k_tile = q_tile + kBM * kPitch;    // (kBN, kPitch)
  float* v_tile = k_tile + kBN * kPitch;    // (kBN, kPitch)
  float* p_tile = v_tile + kBN * kPitch;    // (kBM, kPPitch)

  const AttentionParams& p = args.p;
  const int tx = threadIdx.x % 16;
  const int ty = threadIdx.x / 16;
  const int64_t head = blockIdx.y;
  const int64_t kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const int64_t q0 = int64_t{blockIdx.x} * kBM;
  const int64_t rows = p.q_len - q0 < kBM ? p.q_len - q0 : kBM;  // valid rows in the tile
  const int d_size = static_cast<int>(p.head_dim);
  const T* q = static_cast<const T*>(args.q);
  const T* k = static_cast<const T*>(args.k);
  const T* v = static_cast<const T*>(args.v);

  for (int e = threadIdx.x; e < kBM * kD; e += Traits::kThreads) {
    const int r = e / kD, d = e % kD;
    q_tile[r * kPitch + d] =
        (r < rows && d < d_size) ? ToFloat(q[(q0 + r) * args.q_stride + head * d_size + d]) : 0.0f;
  }

  // Keys [0, kv_end) hold every key some row of this tile sees.
  int64_t kv_end = p.kv_len;
  if (p.causal) {
    const int64_t last = p.q_position0 + q0 + rows - 1 - p.kv_position0;  // key index
    kv_end = last + 1 < 0 ? 0 : (last + 1 < p.kv_len ? last + 1 : p.kv_len);
  }

  float out[Traits::kRows][Traits::kOutCols] = {};
  float row_max[Traits::kRows], row_sum[Traits::kRows];
#pragma unroll
  for (int i = 0; i < Traits::kRows; ++i) {
    row_max[i] = -INFINITY;
    row_sum[i] = 0.0f;
  }

  for (int64_t j0 = 0; j0 < kv_end; j0 += kBN) {
    __syncthreads();  // the previous step's tiles are consumed (and q_tile is written)
    const int64_t keys = kv_end - j0 < kBN ? kv_end - j0 : kBN;
    for (int e = threadIdx.x; e < kBN * kD; e += Traits::kThreads) {
      const int c = e / kD, d = e % kD;
      const bool ok = c < keys && d < d_size;
      k_tile[c * kPitch + d] = ok ? ToFloat(k[(j0 + c) * args.k_stride + kv_head * d_size + d]) : 0.0f;
      v_tile[c * kPitch + d] = ok ? ToFloat(v[(j0 + c) * args.v_stride + kv_head * d_size + d]) : 0.0f;
    }
    __syncthreads();

    float score[Traits::kRows][Traits::kCols] = {};
    for (int d = 0; d < kD; ++d) {
      float qv[Traits::kRows], kv[Traits::kCols];
#pragma unroll
      for (int i = 0; i < Traits::kRows; ++i) qv[i] = q_tile[(ty + 16 * i) * kPitch + d];
#pragma unroll
      for (int j = 0; j < Traits::kCols; ++j) kv[j] = k_tile[(tx + 16 * j) * kPitch + d];
#pragma unroll
      for (int i = 0; i < Traits::kRows; ++i) {
#pragma unroll
        for (int j = 0; j < Traits::kCols; ++j) score[i][j] = fmaf(qv[i], kv[j], score[i][j]);
      }
    }

#pragma unroll
    for (int i = 0; i < Traits::kRows; ++i) {
      const int64_t row = q0 + ty + 16 * i;
      const int64_t visible_end = p.causal ? p.q_position0 + row - p.kv_position0 + 1 : p.kv_len;
      float tile_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < Traits::kCols; ++j) {
        const int64_t key = j0 + tx + 16 * j;
        const bool visible = row < p.q_len && key < kv_end && key < visible_end;
        score[i][j] = visible ? score[i][j] * p.scale : -INFINITY;
        tile_max = fmaxf(tile_max, score[i][j]);
      }
      for (int offset = 8; offset > 0; offset >>= 1) {
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
      }
      const float new_max = fmaxf(row_max[i], tile_max);
      float tile_sum = 0.0f;
      float rescale = 1.0f;
      if (new_max == -INFINITY) {
#pragma unroll
        for (int j = 0; j < Traits::kCols; ++j) score[i][j] = 0.0f;
      } else {
        rescale = expf(row_max[i] - new_max);  // 0 when nothing was seen before
#pragma unroll
        for (int j = 0; j < Traits::kCols; ++j) {
          score[i][j] = expf(score[i][j] - new_max);
          tile_sum += score[i][j];
        }
      }
      for (int offset = 8; offset > 0; offset >>= 1) {
        tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, offset);
      }
      row_max[i] = new_max;
      row_sum[i] = row_sum[i] * rescale + tile_sum;
#pragma unroll
      for (int dd = 0; dd < Traits::kOutCols; ++dd) out[i][dd] *= rescale;
#pragma unroll
      for (int j = 0; j < Traits::kCols; ++j) {
        p_tile[(ty + 16 * i) * kPPitch + tx + 16 * j] = score[i][j];
      }
    }
    __syncthreads();

    for (int c = 0; c < keys; ++c) {
      float pv[Traits::kRows], vv[Traits::kOutCols];
#pragma unroll
      for (int i = 0; i < Traits::kRows; ++i) pv[i] = p_tile[(ty + 16 * i) * kPPitch + c];
#pragma unroll
      for (int dd = 0; dd < Traits::kOutCols; ++dd) vv[dd] = v_tile[c * kPitch + tx + 16 * dd];
#pragma unroll
      for (int i = 0; i < Traits::kRows; ++i) {
#pragma unroll
        for (int dd = 0; dd < Traits::kOutCols; ++dd) out[i][dd] = fmaf(pv[i], vv[dd], out[i][dd]);
      }
    }
  }

#pragma unroll
  for (int i = 0; i < Traits::kRows; ++i) {
    const int64_t row = q0 + ty + 16 * i;
    if (row >= p.q_len) continue;
    const bool seen = row_sum[i] > 0.0f;
    const float inv = seen ? 1.0f / row_sum[i] : 0.0f;
    float* o = p.out + (row * p.num_q_heads + head) * d_size;  // (D)
#pragma unroll
    for (int dd = 0; dd < Traits::kOutCols; ++dd) {
      const int d = tx + 16 * dd;
      if (d < d_size) o[d] = seen ? out[i][dd] * inv : 0.0f;
    }
    if (p.lse != nullptr && tx == 0) {
      p.lse[row * p.num_q_heads + head] = seen ? row_max[i] + logf(row_sum[i]) : -INFINITY;
    }
  }
}

template <typename T, typename Traits>
cudaError_t LaunchAttention(const AttentionArgs& args, cudaStream_t stream) {
  const auto kernel = AttentionKernel<T, Traits>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(Traits::kSmemBytes));
  if (e != cudaSuccess) return e;
  const int64_t tiles = CeilDiv(args.p.q_len, Traits::kBM);
  if (tiles > INT32_MAX || args.p.num_q_heads > 65535) return cudaErrorInvalidValue;
  kernel<<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(args.p.num_q_heads)),
           Traits::kThreads, Traits::kSmemBytes, stream>>>(args);
  return cudaGetLastError();
}

AttentionArgs MakeArgs(const AttentionParams& p) {
  AttentionArgs args{p, p.q, p.k, p.v, p.q_stride, p.k_stride, p.v_stride};
  if (args.q_stride == 0) args.q_stride = p.num_q_heads * p.head_dim;
  if (args.k_stride == 0) args.k_stride = p.num_kv_heads * p.head_dim;
  if (args.v_stride == 0) args.v_stride = p.num_kv_heads * p.head_dim;
  return args;
}

// The smallest instantiation that holds head_dim (kAttentionMaxHeadDim at most).
template <typename T>
cudaError_t LaunchForHeadDim(const AttentionArgs& args, cudaStream_t stream) {
  const int64_t d = args.p.head_dim;
  if (d <= 32) return LaunchAttention<T, AttentionTraits<32, 64, 64>>(args, stream);
  if (d <= 64) return LaunchAttention<T, AttentionTraits<64, 64, 64>>(args, stream);
  if (d <= 128) return LaunchAttention<T, AttentionTraits<128, 64, 64>>(args, stream);
  if (d <= 256) return LaunchAttention<T, AttentionTraits<256, 32, 32>>(args, stream);
  return cudaErrorInvalidValue;
}
static_assert(kAttentionMaxHeadDim == 256, "LaunchForHeadDim instantiates up to 256");

// Merges one row per warp: every lane reads both log-sum-exps before lane 0
// writes the merged one, and only this warp touches the row.
__global__ void AttentionMergeKernel(AttentionMergeParams p) {
  const int64_t row = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (row >= p.rows) return;
  const float lse = p.lse[row];
  const float part_lse = p.part_lse[row];
  float* out = p.out + row * p.head_dim;                   // (D)
  const float* part_out = p.part_out + row * p.head_dim;  // (D)
  __syncwarp();
  if (part_lse == -INFINITY) {
    if (lse == -INFINITY) {
      for (int64_t c = lane; c < p.head_dim; c += 32) out[c] = 0.0f;
    }
    return;
  }
  if (lse == -INFINITY) {
    for (int64_t c = lane; c < p.head_dim; c += 32) out[c] = part_out[c];
    if (lane == 0) p.lse[row] = part_lse;
    return;
  }
  const float merged = fmaxf(lse, part_lse) + log1pf(expf(-fabsf(lse - part_lse)));
  const float w_acc = expf(lse - merged);
  const float w_part = expf(part_lse - merged);
  for (int64_t c = lane; c < p.head_dim; c += 32) out[c] = w_acc * out[c] + w_part * part_out[c];
  if (lane == 0) p.lse[row] = merged;
}

// Beyond the shared checks: the head_dim these kernels instantiate and the
// grid limit of one block row per query head.
absl::Status CheckAttentionSupported(const AttentionParams& p) {
  if (p.head_dim > kAttentionMaxHeadDim) {
    return absl::UnimplementedError(absl::StrCat(
        "Attention (CUDA): head_dim must be <= ", kAttentionMaxHeadDim, ". Given: ", p.head_dim));
  }
  if (p.num_q_heads > 65535) {
    return absl::UnimplementedError(
        absl::StrCat("Attention (CUDA): num_q_heads must be <= 65535. Given: ", p.num_q_heads));
  }
  return absl::OkStatus();
}

cudaError_t LaunchAttentionMerge(const AttentionMergeParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks = CeilDiv(p.rows * 32, kThreads);
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  AttentionMergeKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// The kernels a request may take: by the rule at the top of this file, unless
// TESSERA_ATTENTION_KERNEL names one (benchmarks and tests compare them in one
// process): splitkv (every request the split-KV kernels take, whatever its
// shape), ffma (this file's kernel), inorder or pingpong (the Hopper kernel's
// schedules); the last three never take split-KV.
struct KernelChoice {
  bool split_kv = true;          // for decode-shaped requests
  bool split_kv_always = false;  // for every request it supports
  bool flash = true;
  cuda_flash::FlashVariant variant = cuda_flash::FlashVariant::kPingpong;
};

KernelChoice ChooseKernel(const AttentionParams& p) {
  KernelChoice choice;
  choice.variant = cuda_flash::DefaultFlashVariant(p.head_dim);
  const char* name = std::getenv("TESSERA_ATTENTION_KERNEL");
  if (name == nullptr) return choice;
  if (std::strcmp(name, "splitkv") == 0) choice.split_kv_always = true;
  if (std::strcmp(name, "ffma") == 0) choice.split_kv = choice.flash = false;
  if (std::strcmp(name, "inorder") == 0) {
    choice.split_kv = false;
    choice.variant = cuda_flash::FlashVariant::kInOrder;
  }
  if (std::strcmp(name, "pingpong") == 0) {
    choice.split_kv = false;
    choice.variant = cuda_flash::FlashVariant::kPingpong;
  }
  return choice;
}

// Decode-shaped: at most this many query rows (the rule at the top).
constexpr int64_t kDecodeMaxQueryRows = 16;

// Rule 1 (checked, valid params, q_len >= 1), the workspace aside.
bool TakesSplitKv(const KernelChoice& choice, const AttentionParams& p) {
  return (choice.split_kv_always || (choice.split_kv && p.q_len <= kDecodeMaxQueryRows)) &&
         cuda_decode::SplitKvSupports(p);
}

}  // namespace

absl::Status Attention(const AttentionParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Attention";
  RETURN_IF_ERROR(CheckAttentionParams(p));
  RETURN_IF_ERROR(CheckAttentionSupported(p));
  if (p.q_len == 0) return absl::OkStatus();
  const KernelChoice choice = ChooseKernel(p);
  if (TakesSplitKv(choice, p)) {
    const int64_t workspace_bytes = cuda_decode::SplitKvWorkspaceBytes(p);
    if (workspace_bytes == 0 || (p.workspace != nullptr && p.workspace_bytes >= workspace_bytes)) {
      return FromCuda(kOp, cuda_decode::LaunchSplitKvAttention(p, stream));
    }
  }
  if (choice.flash && cuda_flash::FlashAttentionSm90Supports(p)) {
    return FromCuda(kOp, cuda_flash::LaunchFlashAttentionSm90(p, choice.variant, stream));
  }
  switch (p.type) {
    case ElementType::kF32:
      return FromCuda(kOp, LaunchForHeadDim<float>(MakeArgs(p), stream));
    case ElementType::kBF16:
      return FromCuda(kOp, LaunchForHeadDim<__nv_bfloat16>(MakeArgs(p), stream));
  }
  return absl::InternalError("Attention: unhandled type");  // rejected by the checks
}

int64_t AttentionWorkspaceBytes(const AttentionParams& p) {
  if (!CheckAttentionParams(p).ok() || !CheckAttentionSupported(p).ok() || p.q_len == 0 ||
      !TakesSplitKv(ChooseKernel(p), p)) {
    return 0;
  }
  return cuda_decode::SplitKvWorkspaceBytes(p);
}

absl::Status AttentionMerge(const AttentionMergeParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckAttentionMergeParams(p));
  return FromCuda("AttentionMerge", LaunchAttentionMerge(p, stream));
}

}  // namespace tessera::cuda
