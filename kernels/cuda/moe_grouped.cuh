// What the grouped matrix products of MoeExperts share: the problem (every
// expert's rows of A, contiguous after the permutation, times that expert's
// weights), the tile scheduler (a flat tile index → expert, m-tile, n-tile,
// through per-expert m-tile prefixes the counting sort wrote on the device,
// so the host never learns how many rows an expert got), and the three
// epilogues. Each kernel (moe_experts.cu fp32, moe_gemm_mma.cuh,
// moe_gemm_sm90.cuh) loops over tiles blockIdx.x, blockIdx.x + gridDim.x, ...
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::cuda_moe {

// kRelu2: act = relu(h)² of the up projection h (b_rows = I); kSwiGlu:
// act = silu(gate) · up of the fused up projection (b_rows = 2I, rows [0, I)
// the gate, [I, 2I) up), a tile holding the gate and up rows of the same
// columns; kDown: the down projection in the op's type (b_rows = H).
enum class Epilogue { kRelu2, kSwiGlu, kDown };

struct GroupedGemm {
  const void* a = nullptr;     // (P, k) of the op's type, row stride a_stride: rows by expert;
                               // or, with gather_pairs, x (T, k): the rows before the permutation
  int64_t a_stride = 0;
  int64_t a_rows = 0;          // P: rows that exist in a (the TMA bound; T with gather_pairs)
  // When set, product row R reads row gather_pairs[R] / gather_top_k of a (the
  // token of the pair at permuted row R) instead of row R: the up projection
  // loads x's rows in expert order itself, and no gathered copy of x is written.
  const int32_t* gather_pairs = nullptr;  // (P) pair_of_row
  int gather_top_k = 1;
  const void* b = nullptr;     // (E, b_rows, k) of the op's type: each expert's weights, row-major
  int64_t b_rows = 0;
  int64_t k = 0;               // the reduction
  int64_t n = 0;               // output columns: I (kRelu2, kSwiGlu) or H (kDown)
  void* c = nullptr;           // (P, n) of the op's type, row stride c_stride: act, or out (kDown)
  int64_t c_stride = 0;
  const int32_t* row_starts = nullptr;   // (E + 1) first row of each expert in a and c
  const int32_t* tile_starts = nullptr;  // (E + 1) first m-tile of each expert, this kernel's tile height
  int experts = 0;
  int n_tiles = 0;             // output column tiles per m-tile
};

// The expert whose m-tiles hold global m-tile `mt` (tile_starts[0] = 0 <= mt <
// tile_starts[E]): the last e with tile_starts[e] <= mt, so experts without
// rows (an empty range) are passed over.
__device__ __forceinline__ int ExpertOfTile(const int32_t* tile_starts, int experts, int mt) {
  int lo = 0, hi = experts;
  while (hi - lo > 1) {
    const int mid = (lo + hi) >> 1;
    if (tile_starts[mid] <= mt) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

struct Tile {
  int expert;
  int row0;    // first row of the tile in a and c
  int rows;    // rows of the tile that belong to the expert (may exceed the tile height)
  int n_tile;
};

// The row of a that product row `row` (< P) reads: itself, or its pair's token.
__device__ __forceinline__ int64_t SourceRow(const GroupedGemm& g, int row) {
  return g.gather_pairs == nullptr ? row : g.gather_pairs[row] / g.gather_top_k;
}

__device__ __forceinline__ Tile DecodeTile(const int32_t* tile_starts, const int32_t* row_starts,
                                           int experts, int n_tiles, int tile, int height) {
  const int mt = tile / n_tiles;
  Tile t;
  t.n_tile = tile - mt * n_tiles;
  t.expert = ExpertOfTile(tile_starts, experts, mt);
  const int m0 = (mt - tile_starts[t.expert]) * height;
  t.row0 = row_starts[t.expert] + m0;
  t.rows = row_starts[t.expert + 1] - t.row0;
  return t;
}

// The weight row (inside the expert) behind B-tile row r of n-tile `n_tile`,
// for tiles of `tile_rows` B rows; false when it is past the output columns.
// kSwiGlu tiles interleave gate and up by 8 rows (r = 16q + 8h + i: column
// 8q + i of the tile's tile_rows / 2, h = 0 gate, 1 up), so the m16n8 MMA
// fragments j = 2p and 2p + 1 of a thread hold the gate and up of the same
// columns.
template <Epilogue kEpi>
__device__ __forceinline__ bool WeightRowInterleaved(int r, int n_tile, int tile_rows, int n,
                                                     int64_t* row) {
  if constexpr (kEpi == Epilogue::kSwiGlu) {
    const int c = n_tile * (tile_rows / 2) + 8 * (r >> 4) + (r & 7);
    *row = ((r >> 3) & 1) * int64_t{n} + c;
    return c < n;
  } else {
    const int c = n_tile * tile_rows + r;
    *row = c;
    return c < n;
  }
}

__device__ __forceinline__ float Relu2(float h) {
  const float positive = h > 0.0f ? h : 0.0f;
  return positive * positive;
}

__device__ __forceinline__ float SiluTimes(float gate, float up) {
  return gate / (1.0f + expf(-gate)) * up;
}

__device__ __forceinline__ void StoreValue(float* c, float v) { *c = v; }
__device__ __forceinline__ void StoreValue(__nv_bfloat16* c, float v) { *c = __float2bfloat16_rn(v); }
__device__ __forceinline__ void StoreTwo(float* c, float v0, float v1) {
  *reinterpret_cast<float2*>(c) = make_float2(v0, v1);
}
__device__ __forceinline__ void StoreTwo(__nv_bfloat16* c, float v0, float v1) {
  *reinterpret_cast<__nv_bfloat162*>(c) = __floats2bfloat162_rn(v0, v1);
}

// Two adjacent outputs (columns col, col + 1; col even, c aligned to two
// elements) of row `row` of the tile, those that exist: row < rows, column < n.
template <typename T>
__device__ __forceinline__ void StorePair(T* c, int64_t c_stride, int row, int rows, int col, int n, float v0,
                                          float v1) {
  if (row >= rows || col >= n) return;
  T* at = c + int64_t{row} * c_stride + col;
  if (col + 1 < n && (c_stride & 1) == 0) {
    StoreTwo(at, v0, v1);
  } else {
    StoreValue(at, v0);
    if (col + 1 < n) StoreValue(at + 1, v1);
  }
}

// The epilogue of two adjacent accumulators (row r of the tile, columns col
// and col + 1 of the output): relu² into act or the product into out, both TAct.
template <Epilogue kEpi, typename TAct>
__device__ __forceinline__ void StoreTilePair(const GroupedGemm& g, const Tile& t, int r, int col,
                                              float v0, float v1) {
  static_assert(kEpi != Epilogue::kSwiGlu, "SwiGLU pairs go through StoreTileSwiGlu");
  if constexpr (kEpi == Epilogue::kDown) {
    StorePair(static_cast<TAct*>(g.c) + int64_t{t.row0} * g.c_stride, g.c_stride, r, t.rows, col,
              static_cast<int>(g.n), v0, v1);
  } else {
    StorePair(static_cast<TAct*>(g.c) + int64_t{t.row0} * g.c_stride, g.c_stride, r, t.rows, col,
              static_cast<int>(g.n), Relu2(v0), Relu2(v1));
  }
}

// silu(gate) · up of two adjacent act columns.
template <typename TAct>
__device__ __forceinline__ void StoreTileSwiGlu(const GroupedGemm& g, const Tile& t, int r, int col,
                                                float gate0, float gate1, float up0, float up1) {
  StorePair(static_cast<TAct*>(g.c) + int64_t{t.row0} * g.c_stride, g.c_stride, r, t.rows, col,
            static_cast<int>(g.n), SiluTimes(gate0, up0), SiluTimes(gate1, up1));
}

}  // namespace tessera::cuda_moe
