// MoeExperts on the device, in six launches on one stream, with no host
// synchronisation and nothing allocated (all scratch is the caller's
// workspace, laid out by MoeExpertsWorkspace in kernels/moe_experts.cc):
//   1. CountPairs: each chunk of 2048 (token, slot) pairs counts its pairs per expert.
//   2. ScanCounts (one block): per expert, where each chunk's pairs start;
//      each expert's first row; each expert's first m-tile for tiles of 32,
//      64 and 128 rows (the grouped kernels' schedule).
//   3. ScatterPairs: a stable counting sort (by expert, then token, then slot:
//      a warp walks its 256 pairs in order, __match_any_sync ranking equal
//      experts), writing pair_of_row and row_of_pair. Deterministic.
//   4. Up projection of every expert, one grouped launch, activation in the
//      epilogue → act. Its A tiles are x's rows of each permuted row's token,
//      loaded through pair_of_row (GroupedGemm::gather_pairs): no gathered
//      copy of x (P · H values) is written and read back.
//   5. Down projection of every expert, one grouped launch → out (the op's
//      type: bf16 rows halve what the combine reads, and a plain bf16
//      implementation rounds each expert's output too).
//   6. Combine: each token adds its k rows of out, weighted, to y in ascending
//      expert order (then slot), with the CPU's separate multiply and add.
// bf16 products run on tensor cores: moe_gemm_sm90.cuh (wgmma, B by TMA, A of
// the up projection by cp.async from x; 128 × 192 tiles) when experts average
// 64 rows or more, H and I are multiples of 8 with 16-byte aligned weights
// and x rows, else moe_gemm_mma.cuh (mma.sync, 32 × 64 tiles, the decode
// path). fp32 runs a plain CUDA-core tile product here, so it matches the CPU
// to fp32 rounding.
#include "kernels/moe_experts.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/moe_gemm_mma.cuh"
#include "kernels/cuda/moe_gemm_sm90.cuh"
#include "kernels/cuda/moe_grouped.cuh"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_moe::Epilogue;
using cuda_moe::GroupedGemm;
using cuda_moe::MmaTraits;
using cuda_moe::Sm90Traits;
using params_check::ParamError;
using params_check::StrideOr;

constexpr int kMaxExperts = 1024;
constexpr int kChunk = static_cast<int>(MoeExpertsWorkspaceLayout::kChunk);
constexpr int kScatterWarps = 8;  // each walks kChunk / 8 pairs of a chunk
// Tile heights of the three grouped kernels (mma.sync, fp32, wgmma); tile_starts
// holds one prefix per height, in this order.
__host__ __device__ constexpr int TileHeight(int h) { return h == 0 ? 32 : h == 1 ? 64 : 128; }
static_assert(MmaTraits::kRows == TileHeight(0) && Sm90Traits<128>::kRows == TileHeight(2) &&
                  Sm90Traits<192>::kRows == TileHeight(2),
              "tile_starts heights");

// ------------------------------------------------------------ permutation

// chunk_starts[c][e] = pairs of chunk c routed to expert e.
__global__ void CountPairsKernel(const int32_t* ids, int pairs, int experts, int32_t* chunk_starts) {
  extern __shared__ int32_t counts[];  // (E)
  for (int e = threadIdx.x; e < experts; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  const int begin = blockIdx.x * kChunk, end = min(begin + kChunk, pairs);
  for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const int e = ids[i];
    if (e >= 0 && e < experts) atomicAdd(&counts[e], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < experts; e += blockDim.x) chunk_starts[int64_t{blockIdx.x} * experts + e] = counts[e];
}

// Exclusive scan over one block of 1024 threads, one value each; returns the
// prefix and sets *total. `scratch` holds 32 ints.
__device__ int BlockExclusiveScan(int v, int* scratch, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int inclusive = v;
  for (int offset = 1; offset < 32; offset <<= 1) {
    const int up = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += up;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    const int w = scratch[lane];
    int w_inclusive = w;
    for (int offset = 1; offset < 32; offset <<= 1) {
      const int up = __shfl_up_sync(0xffffffffu, w_inclusive, offset);
      if (lane >= offset) w_inclusive += up;
    }
    scratch[lane] = w_inclusive - w;  // exclusive prefix of the warps
    if (lane == 31) scratch[32] = w_inclusive;
  }
  __syncthreads();
  *total = scratch[32];
  return scratch[warp] + inclusive - v;
}

// One block of 1024 threads (experts <= 1024): turns the per-chunk counts into
// absolute starts and writes row_starts and the three tile_starts prefixes.
__global__ void __launch_bounds__(1024) ScanCountsKernel(int chunks, int experts, int32_t* chunk_starts,
                                                         int32_t* row_starts, int32_t* tile_starts) {
  __shared__ int scratch[33];
  const int e = threadIdx.x;
  int count = 0;
  if (e < experts) {
    for (int c = 0; c < chunks; ++c) {  // exclusive over chunks, for now relative to the expert
      int32_t* at = chunk_starts + int64_t{c} * experts + e;
      const int v = *at;
      *at = count;
      count += v;
    }
  }
  int total;
  const int start = BlockExclusiveScan(count, scratch, &total);
  if (e < experts) row_starts[e] = start;
  if (e == 0) row_starts[experts] = total;
  for (int h = 0; h < 3; ++h) {
    const int tiles = (count + TileHeight(h) - 1) / TileHeight(h);
    const int tile_start = BlockExclusiveScan(tiles, scratch, &total);
    if (e < experts) tile_starts[h * (experts + 1) + e] = tile_start;
    if (e == 0) tile_starts[h * (experts + 1) + experts] = total;
  }
  if (e < experts) {
    for (int c = 0; c < chunks; ++c) chunk_starts[int64_t{c} * experts + e] += start;
  }
}

// Stable: pair i goes to chunk_starts[chunk][e] + (pairs of e before it in its chunk).
__global__ void __launch_bounds__(32 * kScatterWarps)
    ScatterPairsKernel(const int32_t* ids, int pairs, int experts, const int32_t* chunk_starts,
                       int32_t* pair_of_row, int32_t* row_of_pair) {
  extern __shared__ int32_t warp_next[];  // (warps, E): next row of each expert for each warp
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  constexpr int kPerWarp = kChunk / kScatterWarps;
  const int begin = blockIdx.x * kChunk + warp * kPerWarp;
  const int end = min(begin + kPerWarp, pairs);
  for (int i = threadIdx.x; i < kScatterWarps * experts; i += blockDim.x) warp_next[i] = 0;
  __syncthreads();
  for (int i = begin + lane; i < end; i += 32) {
    const int e = ids[i];
    if (e >= 0 && e < experts) atomicAdd(&warp_next[warp * experts + e], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < experts; e += blockDim.x) {  // counts → starts, warp by warp
    int next = chunk_starts[int64_t{blockIdx.x} * experts + e];
    for (int w = 0; w < kScatterWarps; ++w) {
      const int count = warp_next[w * experts + e];
      warp_next[w * experts + e] = next;
      next += count;
    }
  }
  __syncthreads();
  const unsigned lower = (1u << lane) - 1u;
  for (int base = begin; base < end; base += 32) {
    const int i = base + lane;
    const int e = i < end ? ids[i] : -1;
    const bool valid = i < end && e >= 0 && e < experts;
    const unsigned peers = __match_any_sync(0xffffffffu, valid ? e : -1);
    int32_t* next = &warp_next[warp * experts + (valid ? e : 0)];
    const int row = valid ? *next + __popc(peers & lower) : -1;
    __syncwarp();
    if (valid) {
      pair_of_row[row] = i;
      if ((peers >> lane) == 1u) *next += __popc(peers);  // the group's last lane moves it on
    }
    if (i < end) row_of_pair[i] = row;
    __syncwarp();
  }
}

// Four consecutive values of out as floats (16-byte fp32 or 8-byte bf16 loads).
__device__ __forceinline__ float4 LoadFour(const float* at) { return *reinterpret_cast<const float4*>(at); }
__device__ __forceinline__ float4 LoadFour(const __nv_bfloat16* at) {
  const uint2 raw = *reinterpret_cast<const uint2*>(at);
  const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
  const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}

// y[t] += Σ w[t, j] · out[row_of_pair[t, j]], over j in ascending (expert, j)
// order, as the CPU adds experts one after another: separate multiply and add.
// out holds TOut (the op's type); the sum is fp32.
template <typename TOut, bool kVec>
__global__ void CombineKernel(MoeExpertsParams p, int64_t y_stride, const int32_t* row_of_pair, const TOut* out) {
  extern __shared__ unsigned char combine_shared[];
  const int k = static_cast<int>(p.top_k);
  int32_t* rows = reinterpret_cast<int32_t*>(combine_shared);  // (k) in summation order
  float* weights = reinterpret_cast<float*>(rows + k);         // (k)
  const int H = static_cast<int>(p.hidden);
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    const int32_t* ids = p.expert_ids + t * k;
    __syncthreads();  // the previous token's reads of rows and weights are done
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
      const int e = ids[j];
      int rank = 0;
      for (int i = 0; i < k; ++i) {
        const int ei = ids[i];
        rank += ei < e || (ei == e && i < j);
      }
      rows[rank] = row_of_pair[t * k + j];
      weights[rank] = p.expert_weights[t * k + j];
    }
    __syncthreads();
    float* y = p.y + t * y_stride;
    if constexpr (kVec) {
      for (int h = threadIdx.x; h < H / 4; h += blockDim.x) {
        float4 acc = reinterpret_cast<float4*>(y)[h];
        for (int r = 0; r < k; ++r) {
          if (rows[r] < 0) continue;
          const float w = weights[r];
          const float4 o = LoadFour(out + int64_t{rows[r]} * H + 4 * h);
          acc.x = __fadd_rn(acc.x, __fmul_rn(w, o.x));
          acc.y = __fadd_rn(acc.y, __fmul_rn(w, o.y));
          acc.z = __fadd_rn(acc.z, __fmul_rn(w, o.z));
          acc.w = __fadd_rn(acc.w, __fmul_rn(w, o.w));
        }
        reinterpret_cast<float4*>(y)[h] = acc;
      }
    } else {
      for (int h = threadIdx.x; h < H; h += blockDim.x) {
        float acc = y[h];
        for (int r = 0; r < k; ++r) {
          if (rows[r] < 0) continue;
          acc = __fadd_rn(acc, __fmul_rn(weights[r], cuda_launch::ToFloat(out[int64_t{rows[r]} * H + h])));
        }
        y[h] = acc;
      }
    }
  }
}

// ------------------------------------------------------ fp32 tile product

// 64 × 64 output tiles of 256 threads (4 × 4 each, rows ty + 16i, columns
// tx + 16j), K in slices of 16 staged transposed in shared memory. kSwiGlu
// tiles hold 32 gate rows then the 32 up rows of the same columns, so columns
// j and j + 2 of a thread are the gate and up of one act column.
template <Epilogue kEpi>
__global__ void __launch_bounds__(256) MoeGemmF32Kernel(GroupedGemm g) {
  constexpr int kTile = 64, kDepth = 16, kPitch = kTile + 4;
  __shared__ float as[kDepth][kPitch];  // as[k][m]
  __shared__ float bs[kDepth][kPitch];  // bs[k][n]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int K = static_cast<int>(g.k), n = static_cast<int>(g.n);
  const int total = g.tile_starts[g.experts] * g.n_tiles;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
    const cuda_moe::Tile t = cuda_moe::DecodeTile(g.tile_starts, g.row_starts, g.experts, g.n_tiles, tile, kTile);
    const auto* a = static_cast<const float*>(g.a);                                    // rows by SourceRow
    const float* b = static_cast<const float*>(g.b) + int64_t{t.expert} * g.b_rows * g.k;  // (b_rows, K)
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += kDepth) {
      __syncthreads();
#pragma unroll
      for (int q = 0; q < kTile * kDepth / 256; ++q) {
        const int id = threadIdx.x + 256 * q;
        const int r = id / kDepth, kk = id % kDepth;
        const bool in_k = k0 + kk < K;
        as[kk][r] = r < t.rows && in_k ? a[cuda_moe::SourceRow(g, t.row0 + r) * g.a_stride + k0 + kk] : 0.0f;
        int c;
        int64_t row;
        if constexpr (kEpi == Epilogue::kSwiGlu) {
          c = t.n_tile * (kTile / 2) + (r & 31);
          row = (r >> 5) * int64_t{n} + c;
        } else {
          c = t.n_tile * kTile + r;
          row = c;
        }
        bs[kk][r] = c < n && in_k ? b[row * g.k + k0 + kk] : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kDepth; ++kk) {
        float av[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) av[i] = as[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) bv[j] = bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = ty + 16 * i;
      if (r >= t.rows) continue;
      float* c_row = static_cast<float*>(g.c) + int64_t{t.row0 + r} * g.c_stride;
      if constexpr (kEpi == Epilogue::kSwiGlu) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int col = t.n_tile * (kTile / 2) + tx + 16 * j;
          if (col < n) c_row[col] = cuda_moe::SiluTimes(acc[i][j], acc[i][j + 2]);
        }
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int col = t.n_tile * kTile + tx + 16 * j;
          if (col >= n) continue;
          c_row[col] = kEpi == Epilogue::kRelu2 ? cuda_moe::Relu2(acc[i][j]) : acc[i][j];
        }
      }
    }
  }
}

// ------------------------------------------------------------------- host

int CeilDiv(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

absl::StatusOr<int> MultiprocessorCount(absl::string_view op) {
  int device = 0, count = 0;
  RETURN_IF_ERROR(FromCuda(op, cudaGetDevice(&device)));
  RETURN_IF_ERROR(FromCuda(op, cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device)));
  return count;
}

// A grid for a persistent loop over the tiles of tile height `height`: no
// more than there can be tiles (ceil(P / height) + min(E, P) m-tiles, each
// expert's last one partial), and no more than `cap`.
unsigned PersistentGrid(int64_t pairs, int64_t experts, int height, int n_tiles, int64_t cap) {
  const int64_t m_tiles = (pairs + height - 1) / height + std::min(experts, pairs);
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(m_tiles * n_tiles, cap)));
}

using EncodeTiledFn = PFN_cuTensorMapEncodeTiled_v12000;

absl::StatusOr<EncodeTiledFn> TensorMapEncoder(absl::string_view op) {
  static EncodeTiledFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      return static_cast<EncodeTiledFn>(nullptr);
    }
    return reinterpret_cast<EncodeTiledFn>(f);
  }();
  if (fn == nullptr) return absl::FailedPreconditionError(absl::StrCat(op, ": cuTensorMapEncodeTiled not found"));
  return fn;
}

// A (rows, cols) bf16 row-major tensor (row stride `stride` elements) read in
// boxes of box_rows × 64 with the 128-byte swizzle.
absl::StatusOr<CUtensorMap> Bf16TensorMap(absl::string_view op, const void* base, int64_t rows, int64_t cols,
                                          int64_t stride, int box_rows) {
  ASSIGN_OR_RETURN(EncodeTiledFn encode, TensorMapEncoder(op));
  CUtensorMap map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(stride * 2)};
  const cuuint32_t box[2] = {64, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult r = encode(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(base), dims, strides,
                            box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    return absl::InternalError(absl::StrCat(op, ": cuTensorMapEncodeTiled failed (CUresult ", static_cast<int>(r),
                                            ") for a ", rows, " x ", cols, " tensor"));
  }
  return map;
}

// The up projection gathers (g.gather_pairs: A by cp.async, no A map); the
// down projection reads act's permuted rows through TMA.
template <Epilogue kEpi, int kN>
absl::Status LaunchSm90(absl::string_view op, GroupedGemm g, int sms, int64_t pairs, cudaStream_t stream) {
  using Tr = Sm90Traits<kN>;
  constexpr bool kGather = kEpi != Epilogue::kDown;
  if (kGather != (g.gather_pairs != nullptr)) return absl::InternalError(absl::StrCat(op, ": gather mismatch"));
  ASSIGN_OR_RETURN(CUtensorMap b_map, Bf16TensorMap(op, g.b, g.experts * g.b_rows, g.k, g.k,
                                                    Tr::template BoxRows<kEpi>()));
  CUtensorMap a_map = b_map;  // unused when gathering
  if constexpr (!kGather) {
    ASSIGN_OR_RETURN(a_map, Bf16TensorMap(op, g.a, g.a_rows, g.k, g.a_stride, Tr::kRows));
  }
  g.n_tiles = CeilDiv(g.n, Tr::template OutCols<kEpi>());
  const int shared = Tr::SharedBytes(g.experts);
  auto* kernel = cuda_moe::MoeGemmSm90Kernel<kEpi, kN, kGather>;
  RETURN_IF_ERROR(FromCuda(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared)));
  const unsigned grid = PersistentGrid(pairs, g.experts, Tr::kRows, g.n_tiles, sms);
  kernel<<<grid, Tr::kThreads, shared, stream>>>(a_map, b_map, g);
  return FromCuda(op, cudaGetLastError());
}

template <Epilogue kEpi>
absl::Status LaunchMma(absl::string_view op, GroupedGemm g, int sms, int64_t pairs, cudaStream_t stream) {
  g.n_tiles = CeilDiv(g.n, MmaTraits::OutCols<kEpi>());
  const bool vec = g.k % 8 == 0 && g.a_stride % 8 == 0 && Aligned16(g.a) && Aligned16(g.b);
  auto kernel = vec ? cuda_moe::MoeGemmMmaKernel<kEpi, true> : cuda_moe::MoeGemmMmaKernel<kEpi, false>;
  RETURN_IF_ERROR(FromCuda(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    MmaTraits::kSharedBytes)));
  const unsigned grid = PersistentGrid(pairs, g.experts, MmaTraits::kRows, g.n_tiles, int64_t{sms} * 4);
  kernel<<<grid, MmaTraits::kThreads, MmaTraits::kSharedBytes, stream>>>(g);
  return FromCuda(op, cudaGetLastError());
}

template <Epilogue kEpi>
absl::Status LaunchF32(absl::string_view op, GroupedGemm g, int sms, int64_t pairs, cudaStream_t stream) {
  g.n_tiles = CeilDiv(g.n, kEpi == Epilogue::kSwiGlu ? 32 : 64);
  const unsigned grid = PersistentGrid(pairs, g.experts, TileHeight(1), g.n_tiles, int64_t{sms} * 8);
  MoeGemmF32Kernel<kEpi><<<grid, 256, 0, stream>>>(g);
  return FromCuda(op, cudaGetLastError());
}

// kSm90 tiles are 128 × 192 (no column waste at nemotron-3-nano's I 1856 and
// H 2688, 1.2× the operand reuse of 128 × 128); kSm90N128 is the 128 × 128 tile.
enum class GemmPath { kF32, kMma, kSm90, kSm90N128 };

// TESSERA_MOE_KERNEL=mma, sm90 or sm90n128 forces that bf16 kernel whatever
// the shape: a diagnostic for comparing the tensor-core kernels, read once.
const char* ForcedKernel() {
  static const char* forced = std::getenv("TESSERA_MOE_KERNEL");
  return forced;
}

// One grouped product on the chosen path; tile_starts holds the three prefixes.
absl::Status LaunchGrouped(absl::string_view op, Epilogue epilogue, GemmPath path, GroupedGemm g,
                           const int32_t* tile_starts, int sms, int64_t pairs, cudaStream_t stream) {
  const int height_index = path == GemmPath::kMma ? 0 : path == GemmPath::kF32 ? 1 : 2;  // TileHeight order
  g.tile_starts = tile_starts + height_index * (g.experts + 1);
  switch (path) {
    case GemmPath::kF32:
      switch (epilogue) {
        case Epilogue::kRelu2: return LaunchF32<Epilogue::kRelu2>(op, g, sms, pairs, stream);
        case Epilogue::kSwiGlu: return LaunchF32<Epilogue::kSwiGlu>(op, g, sms, pairs, stream);
        case Epilogue::kDown: return LaunchF32<Epilogue::kDown>(op, g, sms, pairs, stream);
      }
      break;
    case GemmPath::kMma:
      switch (epilogue) {
        case Epilogue::kRelu2: return LaunchMma<Epilogue::kRelu2>(op, g, sms, pairs, stream);
        case Epilogue::kSwiGlu: return LaunchMma<Epilogue::kSwiGlu>(op, g, sms, pairs, stream);
        case Epilogue::kDown: return LaunchMma<Epilogue::kDown>(op, g, sms, pairs, stream);
      }
      break;
    case GemmPath::kSm90:
      switch (epilogue) {
        case Epilogue::kRelu2: return LaunchSm90<Epilogue::kRelu2, 192>(op, g, sms, pairs, stream);
        case Epilogue::kSwiGlu: return LaunchSm90<Epilogue::kSwiGlu, 192>(op, g, sms, pairs, stream);
        case Epilogue::kDown: return LaunchSm90<Epilogue::kDown, 192>(op, g, sms, pairs, stream);
      }
      break;
    case GemmPath::kSm90N128:
      switch (epilogue) {
        case Epilogue::kRelu2: return LaunchSm90<Epilogue::kRelu2, 128>(op, g, sms, pairs, stream);
        case Epilogue::kSwiGlu: return LaunchSm90<Epilogue::kSwiGlu, 128>(op, g, sms, pairs, stream);
        case Epilogue::kDown: return LaunchSm90<Epilogue::kDown, 128>(op, g, sms, pairs, stream);
      }
      break;
  }
  return absl::InternalError(absl::StrCat(op, ": unhandled product"));
}

}  // namespace

absl::Status MoeExperts(const MoeExpertsParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "MoeExperts";
  RETURN_IF_ERROR(CheckMoeExpertsParams(p));
  if (p.experts > kMaxExperts) {
    return ParamError(kOp, absl::StrCat("experts must be <= ", kMaxExperts, " on CUDA. Given: ", p.experts));
  }
  const int64_t pairs = p.tokens * p.top_k;
  // Rows, weight rows and tiles are indexed in 32 bits.
  const int64_t most_tiles = (pairs / 32 + 1 + p.experts) * ((std::max(p.hidden, p.intermediate) + 31) / 32);
  if (pairs >= INT_MAX || p.experts * std::max(2 * p.intermediate, p.hidden) >= INT_MAX || most_tiles >= INT_MAX) {
    return ParamError(kOp, absl::StrCat("tokens · top_k (", pairs, "), hidden (", p.hidden, ") or intermediate (",
                                        p.intermediate, ") too large for 32-bit indexing on CUDA"));
  }
  if (p.tokens == 0) return absl::OkStatus();
  RETURN_IF_ERROR(params_check::CheckNotNull(kOp, "workspace", p.workspace));
  ASSIGN_OR_RETURN(const int sms, MultiprocessorCount(kOp));

  const MoeExpertsWorkspaceLayout layout = MoeExpertsWorkspace(p);
  auto* ws = static_cast<unsigned char*>(p.workspace);
  auto* chunk_starts = reinterpret_cast<int32_t*>(ws + layout.chunk_starts);  // (chunks, E)
  auto* row_starts = reinterpret_cast<int32_t*>(ws + layout.row_starts);      // (E + 1)
  auto* tile_starts = reinterpret_cast<int32_t*>(ws + layout.tile_starts);    // (3, E + 1)
  auto* pair_of_row = reinterpret_cast<int32_t*>(ws + layout.pair_of_row);    // (P)
  auto* row_of_pair = reinterpret_cast<int32_t*>(ws + layout.row_of_pair);    // (P)
  void* act = ws + layout.act;                                                // (P, I8)
  void* out = ws + layout.out;                                                // (P, H)
  const int E = static_cast<int>(p.experts);
  const int P = static_cast<int>(pairs);
  const int chunks = CeilDiv(pairs, kChunk);
  const int64_t i8 = (p.intermediate + 7) / 8 * 8;
  const int64_t x_stride = StrideOr(p.x_stride, p.hidden), y_stride = StrideOr(p.y_stride, p.hidden);
  cudaStream_t s = stream;

  CountPairsKernel<<<chunks, 256, sizeof(int32_t) * E, s>>>(p.expert_ids, P, E, chunk_starts);
  RETURN_IF_ERROR(FromCuda(kOp, cudaGetLastError()));
  ScanCountsKernel<<<1, 1024, 0, s>>>(chunks, E, chunk_starts, row_starts, tile_starts);
  RETURN_IF_ERROR(FromCuda(kOp, cudaGetLastError()));
  ScatterPairsKernel<<<chunks, 32 * kScatterWarps, sizeof(int32_t) * kScatterWarps * E, s>>>(
      p.expert_ids, P, E, chunk_starts, pair_of_row, row_of_pair);
  RETURN_IF_ERROR(FromCuda(kOp, cudaGetLastError()));

  const bool swiglu = p.activation == MoeExpertActivation::kSwiGluFused;
  GemmPath path = GemmPath::kF32;
  if (p.type == ElementType::kBF16) {
    // x's rows are read 16 bytes at a time into the swizzled tiles (cp.async).
    const bool tma_shapes = p.hidden % 8 == 0 && p.intermediate % 8 == 0 && Aligned16(p.up) && Aligned16(p.down) &&
                            x_stride % 8 == 0 && Aligned16(p.x);
    path = tma_shapes && pairs >= 64 * p.experts ? GemmPath::kSm90 : GemmPath::kMma;
    if (const char* forced = ForcedKernel(); forced != nullptr) {
      if (std::strcmp(forced, "mma") == 0) path = GemmPath::kMma;
      if (tma_shapes && std::strcmp(forced, "sm90") == 0) path = GemmPath::kSm90;
      if (tma_shapes && std::strcmp(forced, "sm90n128") == 0) path = GemmPath::kSm90N128;
    }
  }
  GroupedGemm up;
  up.a = p.x;
  up.a_stride = x_stride;
  up.a_rows = p.tokens;
  up.gather_pairs = pair_of_row;
  up.gather_top_k = static_cast<int>(p.top_k);
  up.b = p.up;
  up.b_rows = swiglu ? 2 * p.intermediate : p.intermediate;
  up.k = p.hidden;
  up.n = p.intermediate;
  up.c = act;
  up.c_stride = i8;
  up.row_starts = row_starts;
  up.experts = E;
  RETURN_IF_ERROR(LaunchGrouped(kOp, swiglu ? Epilogue::kSwiGlu : Epilogue::kRelu2, path, up, tile_starts, sms,
                                pairs, s));
  GroupedGemm down;
  down.a = act;
  down.a_stride = i8;
  down.a_rows = pairs;
  down.b = p.down;
  down.b_rows = p.hidden;
  down.k = p.intermediate;
  down.n = p.hidden;
  down.c = out;
  down.c_stride = p.hidden;
  down.row_starts = row_starts;
  down.experts = E;
  RETURN_IF_ERROR(LaunchGrouped(kOp, Epilogue::kDown, path, down, tile_starts, sms, pairs, s));

  const bool vec = p.hidden % 4 == 0 && y_stride % 4 == 0 && Aligned16(p.y);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(p.tokens, int64_t{sms} * 64));
  const size_t shared = 8 * p.top_k;
  if (p.type == ElementType::kBF16) {
    const auto* out16 = static_cast<const __nv_bfloat16*>(out);
    if (vec) {
      CombineKernel<__nv_bfloat16, true><<<grid, 256, shared, s>>>(p, y_stride, row_of_pair, out16);
    } else {
      CombineKernel<__nv_bfloat16, false><<<grid, 256, shared, s>>>(p, y_stride, row_of_pair, out16);
    }
  } else if (vec) {
    CombineKernel<float, true><<<grid, 256, shared, s>>>(p, y_stride, row_of_pair, static_cast<const float*>(out));
  } else {
    CombineKernel<float, false><<<grid, 256, shared, s>>>(p, y_stride, row_of_pair, static_cast<const float*>(out));
  }
  return FromCuda(kOp, cudaGetLastError());
}

}  // namespace tessera::cuda
