// The grouped bf16 product for few rows per expert (decode, small batches):
// tiles of 32 rows × 64 weight rows, 4 warps of mma.sync m16n8k16 (fp32
// accumulate), a 4-stage cp.async pipeline over 64-deep slices of K. With a
// few rows per expert the work is streaming each active expert's weights
// once, so the tile is short in M and the grid covers every (expert, n-tile)
// pair. Shared tiles hold rows of 64 bf16 (128 bytes) with 16-byte chunk c of
// row r at c ^ (r % 8), so the ldmatrix reads are conflict-free. A's rows
// come straight from x when the product gathers (GroupedGemm::gather_pairs):
// each thread looks up its two rows' tokens once per tile. kVec needs
// 16-byte aligned rows (K % 8 == 0, aligned bases); otherwise the loads are
// element by element (awkward test shapes, never a real model).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/moe_grouped.cuh"
#include "kernels/cuda/sm80_ptx.cuh"

namespace tessera::cuda_moe {

struct MmaTraits {
  static constexpr int kRows = 32;      // tile height (M)
  static constexpr int kCols = 64;      // weight rows per tile (N before the SwiGLU pairing)
  static constexpr int kDepth = 64;     // K per stage
  static constexpr int kStages = 4;
  static constexpr int kThreads = 128;  // warps 2 (M) × 2 (N), each 16 × 32
  static constexpr int kStageElements = (kRows + kCols) * kDepth;
  static constexpr int kSharedBytes = kStages * kStageElements * 2;
  // Output columns of one n-tile.
  template <Epilogue kEpi>
  static constexpr int OutCols() {
    return kEpi == Epilogue::kSwiGlu ? kCols / 2 : kCols;
  }
};

using cuda_sm80::CpAsync16;
using cuda_sm80::CpAsyncCommit;
using cuda_sm80::CpAsyncWait;
using cuda_sm80::LdMatrixX4;
using cuda_sm80::MmaBf16;
using cuda_sm80::SharedAddress;

// Element offset of 16-byte chunk `chunk` of row `row` in a swizzled tile of 64-wide rows.
__device__ __forceinline__ int SwizzledOffset(int row, int chunk) { return row * 64 + ((chunk ^ (row & 7)) << 3); }

// One 16-byte chunk (8 bf16 at columns k.. of a row), by cp.async or element by element.
// `fallback` is an address that exists, handed to cp.async when nothing is read.
template <bool kVec>
__device__ __forceinline__ void LoadChunk(__nv_bfloat16* dst, const __nv_bfloat16* row_ptr, int k, int K,
                                          bool row_valid, const __nv_bfloat16* fallback) {
  if constexpr (kVec) {
    const bool valid = row_valid && k < K;
    CpAsync16(SharedAddress(dst), valid ? row_ptr + k : fallback, valid);
  } else {
    alignas(16) __nv_bfloat16 v[8];
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      v[q] = row_valid && k + q < K ? row_ptr[k + q] : __float2bfloat16_rn(0.0f);
    }
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
  }
}

template <Epilogue kEpi, bool kVec>
__global__ void __launch_bounds__(MmaTraits::kThreads) MoeGemmMmaKernel(GroupedGemm g) {
  using Tr = MmaTraits;
  extern __shared__ __align__(128) unsigned char mma_shared[];
  __nv_bfloat16* shared = reinterpret_cast<__nv_bfloat16*>(mma_shared);  // (stages, rows + cols, depth)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int warp_m = warp & 1, warp_n = warp >> 1;
  const int K = static_cast<int>(g.k);
  const int k_blocks = (K + Tr::kDepth - 1) / Tr::kDepth;
  const auto* a_base = static_cast<const __nv_bfloat16*>(g.a);
  const auto* b_base = static_cast<const __nv_bfloat16*>(g.b);
  const int total = g.tile_starts[g.experts] * g.n_tiles;

  for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
    const Tile t = DecodeTile(g.tile_starts, g.row_starts, g.experts, g.n_tiles, tile, Tr::kRows);
    const __nv_bfloat16* b = b_base + int64_t{t.expert} * g.b_rows * g.k;  // (b_rows, K)
    // This thread's A rows (r = threadIdx.x / 8 + 16 q): x's row of the pair
    // when gathering, else the permuted row; a_base past the expert's rows.
    constexpr int kARowsPerThread = Tr::kRows * 8 / Tr::kThreads;
    const __nv_bfloat16* a_row[kARowsPerThread];
#pragma unroll
    for (int q = 0; q < kARowsPerThread; ++q) {
      const int r = (threadIdx.x + q * Tr::kThreads) >> 3;
      a_row[q] = r < t.rows ? a_base + SourceRow(g, t.row0 + r) * g.a_stride : a_base;
    }

    auto load_stage = [&](int stage, int kb) {
      __nv_bfloat16* sa = shared + stage * Tr::kStageElements;  // (rows, depth)
      __nv_bfloat16* sb = sa + Tr::kRows * Tr::kDepth;          // (cols, depth)
      const int k0 = kb * Tr::kDepth;
#pragma unroll
      for (int q = 0; q < kARowsPerThread; ++q) {
        const int id = threadIdx.x + q * Tr::kThreads;
        const int r = id >> 3, chunk = id & 7;
        LoadChunk<kVec>(sa + SwizzledOffset(r, chunk), a_row[q], k0 + chunk * 8, K, r < t.rows, a_base);
      }
#pragma unroll
      for (int q = 0; q < Tr::kCols * 8 / Tr::kThreads; ++q) {
        const int id = threadIdx.x + q * Tr::kThreads;
        const int r = id >> 3, chunk = id & 7;
        int64_t row;
        const bool valid = WeightRowInterleaved<kEpi>(r, t.n_tile, Tr::kCols, static_cast<int>(g.n), &row);
        LoadChunk<kVec>(sb + SwizzledOffset(r, chunk), b + row * g.k, k0 + chunk * 8, K, valid, b);
      }
    };

    __syncthreads();  // the previous tile's reads of the stages are done
#pragma unroll
    for (int s = 0; s < Tr::kStages - 1; ++s) {
      if (s < k_blocks) load_stage(s, s);
      CpAsyncCommit();
    }
    float acc[4][4] = {};
    for (int kb = 0; kb < k_blocks; ++kb) {
      CpAsyncWait<Tr::kStages - 2>();
      __syncthreads();
      const int next = kb + Tr::kStages - 1;
      if (next < k_blocks) load_stage(next % Tr::kStages, next);
      CpAsyncCommit();
      const __nv_bfloat16* sa = shared + (kb % Tr::kStages) * Tr::kStageElements;
      const __nv_bfloat16* sb = sa + Tr::kRows * Tr::kDepth;
#pragma unroll
      for (int kk = 0; kk < Tr::kDepth / 16; ++kk) {
        uint32_t af[4];
        {
          const int r = warp_m * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
          const int chunk = kk * 2 + (lane >> 4);
          LdMatrixX4(SharedAddress(sa + SwizzledOffset(r, chunk)), af);
        }
        uint32_t bf[2][4];
#pragma unroll
        for (int p = 0; p < 2; ++p) {
          const int r = warp_n * 32 + p * 16 + (lane & 7) + 8 * (lane >> 4);
          const int chunk = kk * 2 + ((lane >> 3) & 1);
          LdMatrixX4(SharedAddress(sb + SwizzledOffset(r, chunk)), bf[p]);
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) MmaBf16(acc[j], af, bf[j >> 1][(j & 1) * 2], bf[j >> 1][(j & 1) * 2 + 1]);
      }
    }
    CpAsyncWait<0>();

    // acc[j]: rows warp_m·16 + lane/4 (+8 for [2], [3]), B rows warp_n·32 + 8j + 2·(lane%4) (+1).
    const int r = warp_m * 16 + (lane >> 2);
    if constexpr (kEpi == Epilogue::kSwiGlu) {
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        const int col = t.n_tile * (Tr::kCols / 2) + warp_n * 16 + 8 * p + 2 * (lane & 3);
        StoreTileSwiGlu<__nv_bfloat16>(g, t, r, col, acc[2 * p][0], acc[2 * p][1], acc[2 * p + 1][0],
                                       acc[2 * p + 1][1]);
        StoreTileSwiGlu<__nv_bfloat16>(g, t, r + 8, col, acc[2 * p][2], acc[2 * p][3], acc[2 * p + 1][2],
                                       acc[2 * p + 1][3]);
      }
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int col = t.n_tile * Tr::kCols + warp_n * 32 + 8 * j + 2 * (lane & 3);
        StoreTilePair<kEpi, __nv_bfloat16>(g, t, r, col, acc[j][0], acc[j][1]);
        StoreTilePair<kEpi, __nv_bfloat16>(g, t, r + 8, col, acc[j][2], acc[j][3]);
      }
    }
  }
}

}  // namespace tessera::cuda_moe
