// Split-KV ("FlashDecoding") attention for decode-shaped calls: a few query
// rows against a long K/V. Decode is a stream over the keys, so the aim is the
// memory floor: every K/V row read once, by enough thread blocks to keep every
// SM's loads in flight. The keys [0, kv_end) that some row sees are cut into
// `splits` contiguous ranges; one CTA per (KV head, split, block of 64 query
// rows) computes the softmax over its range for every query row of every
// query head that reads that KV head (GQA: row r = i·G + g is query i of head
// kv_head·G + g, G = Hq/Hkv), so a K/V row is read once per 64 query rows of
// its group, not once per query head. Each CTA writes a partial out
// (normalised) and lse; a second kernel merges the partials by the rule of
// kernels/attention.h. With one split the CTA writes out and lse itself and
// no workspace is needed.
//
// Bandwidth. The split count fills one wave: SMs × resident CTAs per SM (2
// for bf16 head_dim 128) over (Hkv × row blocks), but a split keeps at least
// kMinKeysPerSplit keys. A CTA streams its range through a kStages-deep ring
// of 64-key K and V tiles filled by 16-byte cp.async copies (32 KB a stage for
// bf16 head_dim 128), so kStages − 1 stages (64 KB a CTA, 128 KB an SM) are in
// flight while one is consumed: about four times what Little's law asks at the
// H200's bandwidth (4.3 TB/s × ~1 µs of loaded latency / 132 SMs ≈ 33 KB).
// Each thread's copies run on pointers a tile at a time (~4 instructions a
// copy), so at q_len 1 the copies cost about what the math costs. Measured on
// an H200 (bench/decode_attention_bench, Hq 32 / Hkv 8 / D 128 bf16, q_len 1):
// 96% of a device-to-device copy's bandwidth at 64K keys, 108% at 1M (reads
// only, against the copy's reads and writes), 11-13× the flash kernel.
//
// Math. 4 warps; warp w owns 16-row MMA tile w % m_tiles of the CTA's rows and
// the 16-key steps w / m_tiles, w / m_tiles + 4 / m_tiles, … of every tile,
// with its own online softmax (running max m and sum l per row, in log2 units:
// scale · log2 e is folded into the scores); at the end the warps that shared
// a row tile merge through shared memory. Scores and outputs live in the
// register layout of mma.sync m16n8k16. bf16 runs S = Q·Kᵀ and O += P·V on the
// tensor cores: Q fragments stay in registers, K and V come by ldmatrix from
// rows whose 16-byte chunk c of key k sits at c ^ (k % 8) (conflict-free), P
// is rounded to bf16 and l sums the rounded values, so out is exactly a
// weighted mean of V rows. fp32 computes the same fragments with FFMA on rows
// padded by 16 bytes (fp32 arithmetic throughout, as the CUDA-core kernel).
// What keeps a step short (at q_len 16 a warp runs four a tile, and the math,
// not the memory, sets the pace): exp2 by the multi-function unit, the mask
// applied only on steps that cross some row's last key, and O rescaled only
// when some row of the warp raised its max (otherwise the factor is exactly 1).
// The row-by-row merge at the end computes each row's weights once.
//
// Masking follows kernels/attention.h: query i sees key j iff j < kv_len and,
// when causal, kv_position0 + j <= q_position0 + i. A warp skips a step no row
// of its tile sees; keys past a split's end are zero-filled by the copy, so a
// masked P (0) always multiplies a finite V. A row that sees no key of a split
// gives partial out 0 and lse −inf, which the merge weighs as nothing. Padding
// rows of an MMA tile (past q_len · G) run on Q = 0 and are never written.
#include "kernels/cuda/decode_attention.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/flash_attention_ptx.cuh"
#include "kernels/cuda/sm80_ptx.cuh"
#include "kernels/params_check_util.h"

namespace tessera::cuda_decode {
namespace {

using cuda_flash::Exp2;
using cuda_flash::PackBf16;
using cuda_sm80::CpAsync16;
using cuda_sm80::CpAsyncCommit;
using cuda_sm80::CpAsyncWait;
using cuda_sm80::LdMatrixX4;
using cuda_sm80::LdMatrixX4Trans;
using cuda_sm80::MmaBf16;
using cuda_sm80::SharedAddress;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTileKeys = 64;   // keys per ring stage
constexpr int kStepKeys = 16;   // keys per warp step: two n8 MMA tiles
constexpr int kCtaRows = 64;    // query rows per CTA: kWarps MMA tiles of 16
constexpr int64_t kMaxGroupRows = 2 * kCtaRows;  // q_len · Hq/Hkv: K/V read at most twice
constexpr int64_t kMinKeysPerSplit = 128;
constexpr int64_t kSplitAlign = kStepKeys;  // split boundaries
constexpr int kStageBudget = 96 * 1024;     // bytes of the K/V ring
constexpr float kLn2 = 0.6931471805599453f;
constexpr float kLog2e = 1.4426950408889634f;

template <typename T, int kD>
struct SplitKvTraits {
  static constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  static constexpr int kChunks = kD * int{sizeof(T)} / 16;  // 16-byte chunks of a K/V row
  static constexpr int kPitchChunks = kBf16 ? kChunks : kChunks + 1;  // fp32 rows padded
  static constexpr int kTileBytes = kTileKeys * kPitchChunks * 16;    // one K or V tile
  static constexpr int kStages = std::clamp(kStageBudget / (2 * kTileBytes), 2, 4);
  static constexpr int kRingBytes = kStages * 2 * kTileBytes;
  // fp32 Q rows are staged after the ring; bf16 Q lives in registers.
  static constexpr int kQBytes = kBf16 ? 0 : kCtaRows * kPitchChunks * 16;
  // The end-of-range merge reuses the ring: per warp, O (16, kMergePitch) then m and l (16).
  static constexpr int kMergePitch = kD + 8;  // floats; float2 stores conflict-free
  static constexpr int kMergeBytes = kWarps * 16 * (kMergePitch + 2) * 4;
  static constexpr int kSmemBytes = std::max(kRingBytes, kMergeBytes) + kQBytes;
  // Thread x copies chunk x % kChunks of keys x / kChunks + n · kKeysPerCopy of a tile.
  static constexpr int kKeysPerCopy = kThreads / kChunks;
  static constexpr int kCopiesPerThread = kTileKeys / kKeysPerCopy;  // per tile, K and V each
  static constexpr int kCopyStride = kKeysPerCopy * kPitchChunks * 16;  // bytes between a thread's copies
  static_assert(kD == 64 || kD == 128);
  static_assert(kThreads % kChunks == 0 && kTileKeys % kKeysPerCopy == 0);
  static_assert(!kBf16 || kKeysPerCopy % 8 == 0, "a thread's copies keep one swizzle");
  static_assert(kSmemBytes <= 227 * 1024, "over Hopper's opt-in shared memory per block");

  // Byte offset of 16-byte chunk `chunk` of key `key` in a K or V tile.
  __device__ static int ChunkOffset(int key, int chunk) {
    return (key * kPitchChunks + (kBf16 ? chunk ^ (key & 7) : chunk)) * 16;
  }
};

struct SplitKvArgs {
  const void* q;  // (Lq, Hq, D), token stride q_stride
  const void* k;  // (Lk, Hkv, D), token stride k_stride
  const void* v;  // (Lk, Hkv, D), token stride v_stride
  int64_t q_stride, k_stride, v_stride;  // elements
  int q_len, num_q_heads, group;  // group = Hq / Hkv
  int rows;        // q_len · group: query rows per KV head
  int row_blocks;  // ceil(rows / kCtaRows)
  int m_tiles;     // 16-row MMA tiles per CTA holding rows: 1, 2 or 4
  int splits;
  int64_t chunk;     // keys per split, a multiple of kSplitAlign
  int64_t kv_len;
  int64_t kv_end;    // keys [0, kv_end) hold every key some row sees
  int64_t visible0;  // causal: query i sees keys [0, visible0 + i) (then clamped)
  bool causal;
  float scale_log2;  // softmax scale · log2(e)
  float* out;        // (Lq, Hq, D)
  float* lse;        // (Lq, Hq) or null
  float* part_out;   // (splits, Lq, Hq, D) when splits > 1
  float* part_lse;   // (splits, Lq, Hq) when splits > 1
};

// Row r of KV head `kv_head`'s rows, or null past the last row.
template <typename T, int kD>
__device__ const T* QueryRow(const SplitKvArgs& a, int kv_head, int r) {
  if (r >= a.rows) return nullptr;
  const int i = r / a.group, head = kv_head * a.group + r % a.group;
  return static_cast<const T*>(a.q) + int64_t{i} * a.q_stride + int64_t{head} * kD;
}

// Keys [key_begin, key_begin + result) of a split of `keys` keys that row r
// (< rows) sees.
__device__ int VisibleInSplit(const SplitKvArgs& a, int r, int64_t key_begin, int keys) {
  const int64_t end = a.causal ? a.visible0 + r / a.group : a.kv_len;
  return static_cast<int>(std::clamp<int64_t>(end - key_begin, 0, keys));
}

// The per-step products in the m16n8k16 fragment layout, lane = 4·g + t:
// s[n][e] / s[n][2 + e] is the score of row g / g + 8 for key 8n + 2t + e of
// the step; o[c][e] / o[c][2 + e] is column 8c + 2t + e of row g / g + 8.
template <typename T, int kD>
struct SplitKvMath;

template <int kD>
struct SplitKvMath<__nv_bfloat16, kD> {
  using Tr = SplitKvTraits<__nv_bfloat16, kD>;
  struct Q {
    uint32_t a[kD / 16][4];  // A fragments of the warp's 16 rows, one per 16 columns
  };

  __device__ static uint32_t Pair(const __nv_bfloat16* row, int col) {
    if (row == nullptr) return 0;
    __nv_bfloat162 pair;
    pair.x = row[col];
    pair.y = row[col + 1];
    return *reinterpret_cast<const uint32_t*>(&pair);
  }

  // From global memory, any alignment; rows past the last are 0.
  __device__ static void LoadQ(const SplitKvArgs& a, int kv_head, int /*cta_row0*/, int warp_row0,
                               unsigned char* /*q_smem*/, Q& q) {
    const int g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
    const __nv_bfloat16* r0 = QueryRow<__nv_bfloat16, kD>(a, kv_head, warp_row0 + g);
    const __nv_bfloat16* r1 = QueryRow<__nv_bfloat16, kD>(a, kv_head, warp_row0 + g + 8);
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      q.a[kk][0] = Pair(r0, 16 * kk + 2 * t);
      q.a[kk][1] = Pair(r1, 16 * kk + 2 * t);
      q.a[kk][2] = Pair(r0, 16 * kk + 8 + 2 * t);
      q.a[kk][3] = Pair(r1, 16 * kk + 8 + 2 * t);
    }
  }

  // The address of chunk `chunk` (= 2j + half) of tile key key0 + key, key0 a
  // multiple of 16 (then key % 8 = lane % 8 picks the swizzle): a row address
  // and (2j) ^ (half ^ lane % 8), so each ldmatrix costs one XOR and one add.
  __device__ static uint32_t RowAddress(const unsigned char* tile, int key0, int key) {
    return SharedAddress(tile) + (key0 + key) * Tr::kChunks * 16;
  }
  __device__ static uint32_t Chunk(uint32_t row, int two_j, int swizzle) {
    return row + ((two_j ^ swizzle) << 4);
  }

  // s += Q · Kᵀ for keys key0 .. key0 + 15 of the tile.
  __device__ static void Scores(const Q& q, const unsigned char* k_tile, int key0, float (&s)[2][4]) {
    const int lane = threadIdx.x % 32;
    const uint32_t row = RowAddress(k_tile, key0, (lane & 7) + 8 * (lane >> 4));
    const int swizzle = ((lane >> 3) & 1) ^ (lane & 7);
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t b[4];  // keys 0-7 then 8-15, columns 16kk.. and 16kk + 8..
      LdMatrixX4(Chunk(row, 2 * kk, swizzle), b);
      MmaBf16(s[0], q.a[kk], b[0], b[1]);
      MmaBf16(s[1], q.a[kk], b[2], b[3]);
    }
  }

  __device__ static float RoundP(float p) { return __bfloat162float(__float2bfloat16_rn(p)); }

  // o += P · V for keys key0 .. key0 + 15 of the tile (P already bf16 values).
  __device__ static void AccumulatePv(const float (&p)[2][4], const unsigned char* v_tile, int key0,
                                      float (&o)[kD / 8][4]) {
    const int lane = threadIdx.x % 32;
    const uint32_t pa[4] = {PackBf16(p[0][0], p[0][1]), PackBf16(p[0][2], p[0][3]),
                            PackBf16(p[1][0], p[1][1]), PackBf16(p[1][2], p[1][3])};
    const uint32_t row = RowAddress(v_tile, key0, (lane & 7) + 8 * ((lane >> 3) & 1));
    const int swizzle = (lane >> 4) ^ (lane & 7);
#pragma unroll
    for (int c2 = 0; c2 < kD / 16; ++c2) {
      uint32_t b[4];  // columns 16c2.. then 16c2 + 8.., keys 0-7 and 8-15 of each
      LdMatrixX4Trans(Chunk(row, 2 * c2, swizzle), b);
      MmaBf16(o[2 * c2], pa, b[0], b[1]);
      MmaBf16(o[2 * c2 + 1], pa, b[2], b[3]);
    }
  }
};

__device__ __forceinline__ float Dot4(const float4& x, const float4& y, float acc) {
  acc = fmaf(x.x, y.x, acc);
  acc = fmaf(x.y, y.y, acc);
  acc = fmaf(x.z, y.z, acc);
  return fmaf(x.w, y.w, acc);
}

template <int kD>
struct SplitKvMath<float, kD> {
  using Tr = SplitKvTraits<float, kD>;
  static constexpr int kPitch = Tr::kPitchChunks * 4;  // floats per staged row
  struct Q {
    const float* rows;  // the warp's 16 rows, staged in shared memory
  };

  // The CTA's rows into shared memory (read after the ring's first barrier).
  __device__ static void LoadQ(const SplitKvArgs& a, int kv_head, int cta_row0, int warp_row0,
                               unsigned char* q_smem, Q& q) {
    float* rows = reinterpret_cast<float*>(q_smem);  // (kCtaRows, kPitch)
    for (int e = threadIdx.x; e < kCtaRows * kD; e += kThreads) {
      const int r = e / kD, d = e % kD;
      const float* src = QueryRow<float, kD>(a, kv_head, cta_row0 + r);
      rows[r * kPitch + d] = src != nullptr ? src[d] : 0.0f;
    }
    q.rows = rows + (warp_row0 - cta_row0) * kPitch;
  }

  __device__ static void Scores(const Q& q, const unsigned char* k_tile, int key0, float (&s)[2][4]) {
    const int g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
    const float* q0 = q.rows + g * kPitch;
    const float* q1 = q0 + 8 * kPitch;
    const float* k = reinterpret_cast<const float*>(k_tile) + (key0 + 2 * t) * kPitch;
#pragma unroll 8
    for (int d = 0; d < kD; d += 4) {
      const float4 x0 = *reinterpret_cast<const float4*>(q0 + d);
      const float4 x1 = *reinterpret_cast<const float4*>(q1 + d);
#pragma unroll
      for (int n = 0; n < 2; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float4 y = *reinterpret_cast<const float4*>(k + (8 * n + e) * kPitch + d);
          s[n][e] = Dot4(x0, y, s[n][e]);
          s[n][2 + e] = Dot4(x1, y, s[n][2 + e]);
        }
      }
    }
  }

  __device__ static float RoundP(float p) { return p; }

  // Each key's P comes from the lane of the quad that holds it.
  __device__ static void AccumulatePv(const float (&p)[2][4], const unsigned char* v_tile, int key0,
                                      float (&o)[kD / 8][4]) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const float* v = reinterpret_cast<const float*>(v_tile) + key0 * kPitch + 2 * t;
#pragma unroll
    for (int j = 0; j < kStepKeys; ++j) {
      const int from = 4 * g + (j % 8) / 2;
      const float p0 = __shfl_sync(0xffffffffu, p[j / 8][j % 2], from);
      const float p1 = __shfl_sync(0xffffffffu, p[j / 8][2 + j % 2], from);
      const float* row = v + j * kPitch;
#pragma unroll
      for (int c = 0; c < kD / 8; ++c) {
        const float2 w = *reinterpret_cast<const float2*>(row + 8 * c);
        o[c][0] = fmaf(p0, w.x, o[c][0]);
        o[c][1] = fmaf(p0, w.y, o[c][1]);
        o[c][2] = fmaf(p1, w.x, o[c][2]);
        o[c][3] = fmaf(p1, w.y, o[c][3]);
      }
    }
  }
};

// Masks (kMasked: some key of the step is past some row's visible end) and
// exponentiates one step's scores (in place, to P), updates the running max
// and (per-lane partial) sum of rows g and g + 8, and rescales O unless no
// row of the warp changed its max (then the factor is exactly 1).
template <typename Math, bool kMasked, int kOutTiles>
__device__ __forceinline__ void SoftmaxStep(float (&s)[2][4], int key0, const int (&visible)[2],
                                            float scale_log2, float (&m)[2], float (&l)[2],
                                            float (&o)[kOutTiles][4]) {
  const int t = threadIdx.x % 4;
  float rescale[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float step_max = -INFINITY;
#pragma unroll
    for (int n = 0; n < 2; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float& x = s[n][2 * h + e];
        x = !kMasked || key0 + 8 * n + 2 * t + e < visible[h] ? x * scale_log2 : -INFINITY;
        step_max = fmaxf(step_max, x);
      }
    }
    step_max = fmaxf(step_max, __shfl_xor_sync(0xffffffffu, step_max, 1));
    step_max = fmaxf(step_max, __shfl_xor_sync(0xffffffffu, step_max, 2));
    const float new_max = fmaxf(m[h], step_max);
    const float base = new_max == -INFINITY ? 0.0f : new_max;  // no key yet: P and rescale 0
    rescale[h] = new_max == m[h] ? 1.0f : Exp2(m[h] - base);
    m[h] = new_max;
    float sum = 0.0f;
#pragma unroll
    for (int n = 0; n < 2; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float& x = s[n][2 * h + e];
        x = Math::RoundP(Exp2(x - base));
        sum += x;
      }
    }
    l[h] = l[h] * rescale[h] + sum;
  }
  if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f)) {
#pragma unroll
    for (int c = 0; c < kOutTiles; ++c) {
      o[c][0] *= rescale[0];
      o[c][1] *= rescale[0];
      o[c][2] *= rescale[1];
      o[c][3] *= rescale[1];
    }
  }
}

// blockIdx.x = split · row_blocks + row block, blockIdx.y = KV head.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) SplitKvAttentionKernel(SplitKvArgs a) {
  using Tr = SplitKvTraits<T, kD>;
  using Math = SplitKvMath<T, kD>;
  extern __shared__ __align__(128) unsigned char smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int row_block = blockIdx.x % a.row_blocks, split = blockIdx.x / a.row_blocks;
  const int kv_head = blockIdx.y;
  const int key_groups = kWarps / a.m_tiles;
  const int tile_m = warp % a.m_tiles, key_group = warp / a.m_tiles;
  const int cta_row0 = row_block * kCtaRows, warp_row0 = cta_row0 + tile_m * 16;
  const int64_t key_begin = split * a.chunk;
  const int keys = static_cast<int>(std::min(a.chunk, a.kv_end - key_begin));  // of this split
  // Rows past the last (padding of the MMA tile) compute on Q = 0 over the
  // keys of the last row, never written: the warp's mask is then that of its
  // real rows, and a warp with no real row skips every step.
  const bool warp_has_rows = warp_row0 < a.rows;
  const int visible[2] = {VisibleInSplit(a, std::min(warp_row0 + g, a.rows - 1), key_begin, keys),
                          VisibleInSplit(a, std::min(warp_row0 + g + 8, a.rows - 1), key_begin, keys)};

  // This thread's copies: chunk x % kChunks of keys x / kChunks + n · kKeysPerCopy
  // of each tile, from pointers that run on a tile at a time (tiles load in order).
  const int copy_key = threadIdx.x / Tr::kChunks, copy_chunk = threadIdx.x % Tr::kChunks;
  const uint32_t copy_dst = SharedAddress(smem) + Tr::ChunkOffset(copy_key, copy_chunk);
  const T* k_src = static_cast<const T*>(a.k);
  const T* v_src = static_cast<const T*>(a.v);
  if (keys > 0) {
    const int64_t column = int64_t{kv_head} * kD + copy_chunk * (16 / int{sizeof(T)});
    k_src += (key_begin + copy_key) * a.k_stride + column;
    v_src += (key_begin + copy_key) * a.v_stride + column;
  }
  const int64_t k_copy_stride = Tr::kKeysPerCopy * a.k_stride, v_copy_stride = Tr::kKeysPerCopy * a.v_stride;
  int copy_key0 = copy_key;  // of the next tile, in the split
  int load_stage = 0;
  auto load_next_tile = [&] {
    const uint32_t k_dst = copy_dst + load_stage * 2 * Tr::kTileBytes, v_dst = k_dst + Tr::kTileBytes;
#pragma unroll
    for (int n = 0; n < Tr::kCopiesPerThread; ++n) {
      const bool valid = copy_key0 + n * Tr::kKeysPerCopy < keys;
      CpAsync16(k_dst + n * Tr::kCopyStride, valid ? k_src : a.k, valid);
      CpAsync16(v_dst + n * Tr::kCopyStride, valid ? v_src : a.v, valid);
      k_src += k_copy_stride;
      v_src += v_copy_stride;
    }
    copy_key0 += kTileKeys;
    load_stage = load_stage + 1 == Tr::kStages ? 0 : load_stage + 1;
  };

  const int tiles = (keys + kTileKeys - 1) / kTileKeys;
#pragma unroll
  for (int s = 0; s < Tr::kStages - 1; ++s) {
    if (s < tiles) load_next_tile();
    CpAsyncCommit();
  }
  typename Math::Q q;
  Math::LoadQ(a, kv_head, cta_row0, warp_row0, smem + std::max(Tr::kRingBytes, Tr::kMergeBytes), q);

  float o[kD / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  for (int tile = 0, stage = 0; tile < tiles; ++tile, stage = stage + 1 == Tr::kStages ? 0 : stage + 1) {
    CpAsyncWait<Tr::kStages - 2>();  // this tile's copies, issued kStages - 1 tiles ago
    __syncthreads();                 // ... are everyone's; the stage refilled below is consumed
    if (tile + Tr::kStages - 1 < tiles) load_next_tile();
    CpAsyncCommit();
    const unsigned char* k_tile = smem + stage * 2 * Tr::kTileBytes;
    const unsigned char* v_tile = k_tile + Tr::kTileBytes;
    for (int step = key_group; warp_has_rows && step < kTileKeys / kStepKeys; step += key_groups) {
      const int key0 = tile * kTileKeys + step * kStepKeys;  // in the split
      if (!__any_sync(0xffffffffu, key0 < visible[0] || key0 < visible[1])) continue;
      float s[2][4] = {};
      Math::Scores(q, k_tile, step * kStepKeys, s);
      if (__all_sync(0xffffffffu, key0 + kStepKeys <= min(visible[0], visible[1]))) {
        SoftmaxStep<Math, false>(s, key0, visible, a.scale_log2, m, l, o);
      } else {
        SoftmaxStep<Math, true>(s, key0, visible, a.scale_log2, m, l, o);
      }
      Math::AccumulatePv(s, v_tile, step * kStepKeys, o);
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }

  // Merge the warps that shared a row tile, through the (drained) ring.
  CpAsyncWait<0>();
  __syncthreads();
  float* merge_o = reinterpret_cast<float*>(smem);                // (warps, 16, kMergePitch)
  float* merge_m = merge_o + kWarps * 16 * Tr::kMergePitch;       // (warps, 16)
  float* merge_l = merge_m + kWarps * 16;                         // (warps, 16)
  {
    float* rows = merge_o + warp * 16 * Tr::kMergePitch;
#pragma unroll
    for (int c = 0; c < kD / 8; ++c) {
      *reinterpret_cast<float2*>(rows + g * Tr::kMergePitch + 8 * c + 2 * t) = make_float2(o[c][0], o[c][1]);
      *reinterpret_cast<float2*>(rows + (g + 8) * Tr::kMergePitch + 8 * c + 2 * t) =
          make_float2(o[c][2], o[c][3]);
    }
    if (t == 0) {
      merge_m[warp * 16 + g] = m[0];
      merge_m[warp * 16 + g + 8] = m[1];
      merge_l[warp * 16 + g] = l[0];
      merge_l[warp * 16 + g + 8] = l[1];
    }
  }
  __syncthreads();
  const int64_t out_rows = int64_t{a.q_len} * a.num_q_heads;  // (Lq, Hq)
  float* out = a.splits == 1 ? a.out : a.part_out + split * out_rows * kD;
  float* lse = a.splits == 1 ? a.lse : a.part_lse + split * out_rows;
  // Warp w writes CTA rows w, w + kWarps, ...: the row's weights once, then
  // its columns lane, lane + 32, ... Warp first + kg · m_tiles holds row
  // `row` of MMA tile `first` for key group kg.
  for (int cta_row = warp; cta_row < a.m_tiles * 16; cta_row += kWarps) {
    const int r = cta_row0 + cta_row;
    if (r >= a.rows) break;
    const int first = cta_row / 16, row = cta_row % 16;
    float max = -INFINITY;
    for (int kg = 0; kg < key_groups; ++kg) max = fmaxf(max, merge_m[(first + kg * a.m_tiles) * 16 + row]);
    float weight[kWarps], sum = 0.0f;
#pragma unroll
    for (int kg = 0; kg < kWarps; ++kg) {
      const int w = (first + kg * a.m_tiles) * 16 + row;
      weight[kg] = kg < key_groups && max != -INFINITY ? exp2f(merge_m[w] - max) : 0.0f;
      sum += kg < key_groups ? weight[kg] * merge_l[w] : 0.0f;
    }
    // A finite max is some warp's row max, whose own P was exp2(0) = 1: sum >= 1.
    const float inverse = max == -INFINITY ? 0.0f : 1.0f / sum;
    const int64_t out_row = int64_t{r / a.group} * a.num_q_heads + kv_head * a.group + r % a.group;
#pragma unroll
    for (int d = lane; d < kD; d += 32) {
      float acc = 0.0f;
#pragma unroll
      for (int kg = 0; kg < kWarps; ++kg) {
        if (kg < key_groups) {
          acc += weight[kg] * merge_o[((first + kg * a.m_tiles) * 16 + row) * Tr::kMergePitch + d];
        }
      }
      out[out_row * kD + d] = acc * inverse;
    }
    if (lane == 0 && lse != nullptr) lse[out_row] = max == -INFINITY ? -INFINITY : (max + log2f(sum)) * kLn2;
  }
}

// One block of kThreads per output row (query i, head h). Warp 0 turns the
// splits' lses into weights exp(lse_s - max) (shared memory, `splits` floats)
// and their sum; then thread (group, c) sums columns 4c..4c+3 over splits
// group, group + groups, ... (16-byte loads, independent across splits), and
// the groups add up through shared memory.
__global__ void __launch_bounds__(kThreads) SplitKvCombineKernel(SplitKvArgs a, int head_dim) {
  extern __shared__ float weights[];           // (splits)
  __shared__ float4 group_sums[kThreads];      // (groups, head_dim / 4)
  __shared__ float row_max, row_sum;
  const int64_t out_rows = int64_t{a.q_len} * a.num_q_heads;
  const int64_t row = blockIdx.x;
  const int lane = threadIdx.x % 32;
  if (threadIdx.x < 32) {
    float max = -INFINITY;
    for (int s = lane; s < a.splits; s += 32) max = fmaxf(max, a.part_lse[s * out_rows + row]);
    for (int offset = 16; offset > 0; offset >>= 1) {
      max = fmaxf(max, __shfl_xor_sync(0xffffffffu, max, offset));
    }
    float sum = 0.0f;
    for (int s = lane; s < a.splits; s += 32) {
      const float part_lse = a.part_lse[s * out_rows + row];
      weights[s] = part_lse == -INFINITY ? 0.0f : expf(part_lse - max);  // a split that saw nothing: 0
      sum += weights[s];
    }
    sum = cuda_launch::WarpSum(sum);
    if (lane == 0) row_max = max, row_sum = sum;
  }
  __syncthreads();
  const int columns = head_dim / 4;  // float4s of a row
  const int groups = kThreads / columns;
  const int c = threadIdx.x % columns, group = threadIdx.x / columns;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (row_max != -INFINITY) {
    const float4* part = reinterpret_cast<const float4*>(a.part_out + row * head_dim) + c;
#pragma unroll 4
    for (int s = group; s < a.splits; s += groups) {
      const float4 x = part[s * out_rows * columns];
      const float w = weights[s];
      acc.x = fmaf(w, x.x, acc.x);
      acc.y = fmaf(w, x.y, acc.y);
      acc.z = fmaf(w, x.z, acc.z);
      acc.w = fmaf(w, x.w, acc.w);
    }
  }
  group_sums[threadIdx.x] = acc;
  __syncthreads();
  if (group != 0) return;
  for (int g = 1; g < groups; ++g) {
    const float4 x = group_sums[g * columns + c];
    acc.x += x.x, acc.y += x.y, acc.z += x.z, acc.w += x.w;
  }
  // A finite max is some split's lse, whose weight is 1: row_sum >= 1.
  const bool seen = row_max != -INFINITY;
  float* out = a.out + row * head_dim + 4 * c;
  out[0] = seen ? acc.x / row_sum : 0.0f;
  out[1] = seen ? acc.y / row_sum : 0.0f;
  out[2] = seen ? acc.z / row_sum : 0.0f;
  out[3] = seen ? acc.w / row_sum : 0.0f;
  if (threadIdx.x == 0 && a.lse != nullptr) {
    a.lse[row] = row_max == -INFINITY ? -INFINITY : row_max + logf(row_sum);
  }
}

// --------------------------------------------------------------------- host

using params_check::StrideOr;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

int SmCount() {
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    cudaGetLastError();
    return 1;
  }
  return std::max(sms, 1);
}

using SplitKernel = void (*)(SplitKvArgs);

// CTAs of `kernel` resident on one SM, asked once per process (devices alike).
template <typename T, int kD>
int ResidentCtas() {
  static const int ctas = [] {
    const SplitKernel kernel = SplitKvAttentionKernel<T, kD>;
    constexpr int kSmem = SplitKvTraits<T, kD>::kSmemBytes;
    int n = 0;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, kSmem) != cudaSuccess) {
      cudaGetLastError();
      return 1;
    }
    return std::max(n, 1);
  }();
  return ctas;
}

struct SplitKvInstance {
  SplitKernel kernel;
  int smem_bytes;
  int resident_ctas;  // per SM
};

template <typename T, int kD>
SplitKvInstance InstanceFor() {
  return {SplitKvAttentionKernel<T, kD>, SplitKvTraits<T, kD>::kSmemBytes, ResidentCtas<T, kD>()};
}

SplitKvInstance ChooseInstance(const AttentionParams& p) {
  const bool bf16 = p.type == ElementType::kBF16;
  if (p.head_dim == 64) return bf16 ? InstanceFor<__nv_bfloat16, 64>() : InstanceFor<float, 64>();
  return bf16 ? InstanceFor<__nv_bfloat16, 128>() : InstanceFor<float, 128>();
}

struct SplitKvPlan {
  int rows, row_blocks, m_tiles;
  int64_t kv_end;
  int64_t max_splits;  // what the workspace holds: monotone in kv_end
  int splits;          // <= max_splits, none empty
  int64_t chunk;
};

// One wave of CTAs (every SM full) over the KV heads and row blocks, no split
// under kMinKeysPerSplit keys; the keys divided evenly, rounded to kSplitAlign.
SplitKvPlan MakePlan(const AttentionParams& p, const SplitKvInstance& kernel) {
  SplitKvPlan plan;
  plan.rows = static_cast<int>(p.q_len * (p.num_q_heads / p.num_kv_heads));
  plan.row_blocks = static_cast<int>(CeilDiv(plan.rows, kCtaRows));
  const int64_t tiles = CeilDiv(std::min<int64_t>(plan.rows, kCtaRows), 16);
  plan.m_tiles = tiles == 1 ? 1 : (tiles == 2 ? 2 : 4);
  plan.kv_end = p.causal ? std::clamp<int64_t>(p.q_position0 + p.q_len - p.kv_position0, 0, p.kv_len)
                         : p.kv_len;
  const int64_t wave = int64_t{SmCount()} * kernel.resident_ctas;
  plan.max_splits = std::max<int64_t>(
      1, std::min(wave / (p.num_kv_heads * plan.row_blocks), CeilDiv(plan.kv_end, kMinKeysPerSplit)));
  const int64_t per_split = CeilDiv(std::max<int64_t>(plan.kv_end, 1), plan.max_splits);
  plan.chunk = CeilDiv(per_split, kSplitAlign) * kSplitAlign;
  plan.splits = static_cast<int>(std::max<int64_t>(1, CeilDiv(plan.kv_end, plan.chunk)));
  return plan;
}

int64_t WorkspaceBytes(const AttentionParams& p, const SplitKvPlan& plan) {
  if (plan.max_splits <= 1) return 0;
  return plan.max_splits * p.q_len * p.num_q_heads * (p.head_dim + 1) * int64_t{sizeof(float)};
}

}  // namespace

bool SplitKvSupports(const AttentionParams& p) {
  const int64_t bytes = ElementBytes(p.type);
  const int64_t packed = p.num_kv_heads * p.head_dim;
  const bool kv_aligned = p.kv_len == 0 || (Aligned16(p.k) && Aligned16(p.v) &&
                                            StrideOr(p.k_stride, packed) * bytes % 16 == 0 &&
                                            StrideOr(p.v_stride, packed) * bytes % 16 == 0);
  return (p.type == ElementType::kBF16 || p.type == ElementType::kF32) &&
         (p.head_dim == 64 || p.head_dim == 128) && p.q_len >= 1 &&
         p.q_len * (p.num_q_heads / p.num_kv_heads) <= kMaxGroupRows && p.kv_len < (int64_t{1} << 31) &&
         p.num_kv_heads <= 65535 && kv_aligned;
}

int64_t SplitKvWorkspaceBytes(const AttentionParams& p) {
  const SplitKvInstance kernel = ChooseInstance(p);
  return WorkspaceBytes(p, MakePlan(p, kernel));
}

cudaError_t LaunchSplitKvAttention(const AttentionParams& p, cudaStream_t stream) {
  const SplitKvInstance kernel = ChooseInstance(p);
  const SplitKvPlan plan = MakePlan(p, kernel);
  SplitKvArgs a{};
  a.q = p.q;
  a.k = p.k;
  a.v = p.v;
  a.q_stride = StrideOr(p.q_stride, p.num_q_heads * p.head_dim);
  a.k_stride = StrideOr(p.k_stride, p.num_kv_heads * p.head_dim);
  a.v_stride = StrideOr(p.v_stride, p.num_kv_heads * p.head_dim);
  a.q_len = static_cast<int>(p.q_len);
  a.num_q_heads = static_cast<int>(p.num_q_heads);
  a.group = static_cast<int>(p.num_q_heads / p.num_kv_heads);
  a.rows = plan.rows;
  a.row_blocks = plan.row_blocks;
  a.m_tiles = plan.m_tiles;
  a.splits = plan.splits;
  a.chunk = plan.chunk;
  a.kv_len = p.kv_len;
  a.kv_end = plan.kv_end;
  a.visible0 = p.q_position0 - p.kv_position0 + 1;
  a.causal = p.causal;
  a.scale_log2 = p.scale * kLog2e;
  a.out = p.out;
  a.lse = p.lse;
  if (plan.splits > 1) {
    if (p.workspace == nullptr || p.workspace_bytes < WorkspaceBytes(p, plan)) return cudaErrorInvalidValue;
    a.part_out = static_cast<float*>(p.workspace);
    a.part_lse = a.part_out + int64_t{plan.splits} * p.q_len * p.num_q_heads * p.head_dim;
  }
  cudaError_t e = cudaFuncSetAttribute(kernel.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       kernel.smem_bytes);
  if (e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(plan.row_blocks * plan.splits),
                  static_cast<unsigned>(p.num_kv_heads));
  kernel.kernel<<<grid, kThreads, kernel.smem_bytes, stream>>>(a);
  if (plan.splits > 1) {
    SplitKvCombineKernel<<<static_cast<unsigned>(p.q_len * p.num_q_heads), kThreads,
                           sizeof(float) * plan.splits, stream>>>(a, static_cast<int>(p.head_dim));
  }
  return cudaGetLastError();
}

}  // namespace tessera::cuda_decode
