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
// Two ops run the same CTA body (AttendKeyRange: one row block of one KV
// head over one key range): cuda::Attention's decode-shaped calls (one
// request, its keys cut into equal splits planned on the host) and
// cuda::DecodeAttention (a batch of requests, one query row each, with their
// own K/V pointers and lengths in device memory). For a batch the pieces are
// planned on the device, by every CTA from kv_lens (BatchSplitKvAttentionKernel):
// about one wave of pieces in all, each request getting a share of them in
// proportion to its length, so one long request among short ones is not a
// straggler and a graph captured once serves any lengths.
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

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/flash_attention_ptx.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/sm80_ptx.cuh"
#include "kernels/decode_attention.h"
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

// One CTA's work: the softmax of row block `row_block` of KV head `kv_head`'s
// rows over keys [key_begin, key_begin + keys), written (normalised) to out
// (Lq, Hq, D) and lse (Lq, Hq; may be null) at the rows' own places: the
// final answer when one range covers the keys, else a partial. Both kernels
// below (one request's splits; a batch's pieces) run this body.
template <typename T, int kD>
__device__ __forceinline__ void AttendKeyRange(const SplitKvArgs& a, int kv_head, int row_block, int64_t key_begin,
                                               int keys, float* out, float* lse, unsigned char* smem) {
  using Tr = SplitKvTraits<T, kD>;
  using Math = SplitKvMath<T, kD>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int key_groups = kWarps / a.m_tiles;
  const int tile_m = warp % a.m_tiles, key_group = warp / a.m_tiles;
  const int cta_row0 = row_block * kCtaRows, warp_row0 = cta_row0 + tile_m * 16;
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

// blockIdx.x = split · row_blocks + row block, blockIdx.y = KV head.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) SplitKvAttentionKernel(SplitKvArgs a) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int row_block = blockIdx.x % a.row_blocks, split = blockIdx.x / a.row_blocks;
  const int64_t key_begin = split * a.chunk;
  const int keys = static_cast<int>(std::min(a.chunk, a.kv_end - key_begin));  // of this split
  const int64_t out_rows = int64_t{a.q_len} * a.num_q_heads;                  // (Lq, Hq)
  float* out = a.splits == 1 ? a.out : a.part_out + split * out_rows * kD;
  float* lse = a.splits == 1 ? a.lse : a.part_lse + split * out_rows;
  AttendKeyRange<T, kD>(a, blockIdx.y, row_block, key_begin, keys, out, lse, smem);
}

// A batch (DecodeAttention): one query row per request, each request with its
// own K, V and length. The keys of all requests are cut into items, about
// `target` of them in all: request r gets pieces_r ≈ target · len_r / total
// (at least 1, at most one per kMinKeysPerSplit keys) of equal size, so the
// items are about equal whatever the mix of lengths, and one wave of CTAs
// (target per KV head) streams them. The plan is made on the device from
// kv_lens, by warp 0 of every CTA (a few loads and shuffles), so the launch
// depends on the batch size alone and a captured graph serves any lengths.
struct BatchSplitKvArgs {
  SplitKvArgs base;  // the shared sizes, strides and scale; q_len 1, not causal
  const void* q;     // (batch, Hq, D), request stride q_request_stride
  int64_t q_request_stride;
  const void* const* k;  // (batch) pointers
  const void* const* v;  // (batch) pointers
  const int32_t* kv_lens;  // (batch)
  int batch;
  int target;        // items to aim for; 1: one piece per request (no workspace)
  float* out;        // (batch, Hq, D)
  float* lse;        // (batch, Hq) or null
  float* part_out;   // (target + batch, Hq, D) when target > 1: item i's partials
  float* part_lse;   // (target + batch, Hq)
  int* plan;         // (batch, 2): request r's first item and pieces, when target > 1
};

struct BatchItem {
  int request;  // -1: no item (the CTA has nothing to do)
  int piece, pieces;
  int first;      // the request's first item
  int64_t chunk;  // keys per piece
};

// Pieces of a request of `len` keys among `total`, and the keys per piece
// (a multiple of kSplitAlign): the same answer in every CTA.
__device__ void PiecesOf(int64_t len, int64_t total, int target, int& pieces, int64_t& chunk) {
  constexpr int64_t kAlign = kSplitAlign, kMinKeys = kMinKeysPerSplit;  // by value in device code
  len = len < 0 ? 0 : len;
  const int64_t most = len > kMinKeys ? (len + kMinKeys - 1) / kMinKeys : 1;
  int64_t n = total > 0 ? (len * target + total / 2) / total : 1;  // round(target · len / total)
  n = n < 1 ? 1 : (n > most ? most : n);
  chunk = ((len + n - 1) / n + kAlign - 1) / kAlign * kAlign;
  chunk = chunk < kAlign ? kAlign : chunk;
  pieces = len > chunk ? static_cast<int>((len + chunk - 1) / chunk) : 1;
}

// Warp 0: item `index` of the batch's plan into *item.
__device__ void FindBatchItem(const BatchSplitKvArgs& b, int index, BatchItem* item) {
  const int lane = threadIdx.x % 32;
  if (lane == 0) item->request = -1;
  long long total = 0;
  for (int r = lane; r < b.batch; r += 32) total += std::max(b.kv_lens[r], 0);
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) total += __shfl_xor_sync(0xffffffffu, total, offset);
  __syncwarp();
  int first = 0;  // items of the requests before this round's
  for (int r0 = 0; r0 < b.batch; r0 += 32) {
    const int r = r0 + lane;
    int pieces = 0;
    int64_t chunk = 0;
    if (r < b.batch) PiecesOf(b.kv_lens[r], total, b.target, pieces, chunk);
    int inclusive = pieces;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const int before = __shfl_up_sync(0xffffffffu, inclusive, offset);
      if (lane >= offset) inclusive += before;
    }
    const int begin = first + inclusive - pieces;
    const bool mine = r < b.batch && index >= begin && index < begin + pieces;
    if (mine) *item = BatchItem{r, index - begin, pieces, begin, chunk};
    if (__any_sync(0xffffffffu, mine)) break;
    first += __shfl_sync(0xffffffffu, inclusive, 31);
  }
}

// blockIdx.x = item · row_blocks + row block, blockIdx.y = KV head.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) BatchSplitKvAttentionKernel(BatchSplitKvArgs b) {
  cuda_launch::GridDependencyWait();  // first: see cuda_util.cuh
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ BatchItem item;
  const int row_block = blockIdx.x % b.base.row_blocks;
  if (threadIdx.x < 32) FindBatchItem(b, blockIdx.x / b.base.row_blocks, &item);
  __syncthreads();
  const int r = item.request;
  if (r < 0) return;  // past the last item
  SplitKvArgs a = b.base;
  a.q = static_cast<const T*>(b.q) + r * b.q_request_stride;
  a.kv_len = b.kv_lens[r];
  a.k = b.k[r];
  a.v = b.v[r];
  const int64_t chunk = item.chunk, key_begin = item.piece * chunk, left = a.kv_len - key_begin;
  const int keys = static_cast<int>(left < 0 ? 0 : (left < chunk ? left : chunk));  // of this piece
  const int64_t heads = a.num_q_heads;
  float* out = b.out + r * heads * kD;
  float* lse = b.lse == nullptr ? nullptr : b.lse + r * heads;
  if (item.pieces > 1) {
    out = b.part_out + (item.first + item.piece) * heads * kD;
    lse = b.part_lse + (item.first + item.piece) * heads;
    if (item.piece == 0 && blockIdx.y == 0 && row_block == 0 && threadIdx.x == 0) {
      b.plan[2 * r] = item.first;
      b.plan[2 * r + 1] = item.pieces;
    }
  } else if (b.plan != nullptr && blockIdx.y == 0 && row_block == 0 && threadIdx.x == 0) {
    b.plan[2 * r + 1] = 1;  // the combine leaves this request alone
  }
  AttendKeyRange<T, kD>(a, blockIdx.y, row_block, key_begin, keys, out, lse, smem);
}

// Merges the `splits` partials of one output row (part_lse[s · stride],
// part_out[s · stride · D ...]) into out (D) and lse (or null), by a block of
// kThreads. Warp 0 turns the splits' lses into weights exp(lse_s - max)
// (`weights`, shared, `splits` floats) and their sum; then thread (group, c)
// sums columns 4c..4c+3 over splits group, group + groups, ... (16-byte
// loads, independent across splits), and the groups add up through shared
// memory.
__device__ __forceinline__ void CombineRow(const float* part_out, const float* part_lse, int64_t stride, int splits,
                                           int head_dim, float* out, float* lse, float* weights) {
  __shared__ float4 group_sums[kThreads];  // (groups, head_dim / 4)
  __shared__ float row_max, row_sum;
  const int lane = threadIdx.x % 32;
  if (threadIdx.x < 32) {
    float max = -INFINITY;
    for (int s = lane; s < splits; s += 32) max = fmaxf(max, part_lse[s * stride]);
    for (int offset = 16; offset > 0; offset >>= 1) {
      max = fmaxf(max, __shfl_xor_sync(0xffffffffu, max, offset));
    }
    float sum = 0.0f;
    for (int s = lane; s < splits; s += 32) {
      const float split_lse = part_lse[s * stride];
      weights[s] = split_lse == -INFINITY ? 0.0f : expf(split_lse - max);  // a split that saw nothing: 0
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
    const float4* part = reinterpret_cast<const float4*>(part_out) + c;
#pragma unroll 4
    for (int s = group; s < splits; s += groups) {
      const float4 x = part[s * stride * columns];
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
  out += 4 * c;
  out[0] = seen ? acc.x / row_sum : 0.0f;
  out[1] = seen ? acc.y / row_sum : 0.0f;
  out[2] = seen ? acc.z / row_sum : 0.0f;
  out[3] = seen ? acc.w / row_sum : 0.0f;
  if (threadIdx.x == 0 && lse != nullptr) *lse = seen ? row_max + logf(row_sum) : -INFINITY;
}

// One block per output row (query i, head h) of one request's splits.
__global__ void __launch_bounds__(kThreads) SplitKvCombineKernel(SplitKvArgs a, int head_dim) {
  extern __shared__ float weights[];  // (splits)
  const int64_t out_rows = int64_t{a.q_len} * a.num_q_heads;
  const int64_t row = blockIdx.x;
  CombineRow(a.part_out + row * head_dim, a.part_lse + row, out_rows, a.splits, head_dim, a.out + row * head_dim,
             a.lse == nullptr ? nullptr : a.lse + row, weights);
}

// One block per output row (request r = blockIdx.y, head h = blockIdx.x) of
// a batch; a request of one piece was written by its CTA already.
__global__ void __launch_bounds__(kThreads) BatchSplitKvCombineKernel(const int* plan, const float* part_out,
                                                                     const float* part_lse, float* out, float* lse,
                                                                     int heads, int head_dim) {
  cuda_launch::GridDependencyWait();  // first: see cuda_util.cuh
  extern __shared__ float weights[];  // (target)
  const int64_t r = blockIdx.y, h = blockIdx.x;
  const int first = plan[2 * r], pieces = plan[2 * r + 1];
  if (pieces <= 1) return;
  CombineRow(part_out + (first * int64_t{heads} + h) * head_dim, part_lse + first * int64_t{heads} + h, heads,
             pieces, head_dim, out + (r * heads + h) * head_dim, lse == nullptr ? nullptr : lse + r * heads + h,
             weights);
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
using BatchSplitKernel = void (*)(BatchSplitKvArgs);

// CTAs of `kernel` resident on one SM with kSmem bytes of dynamic shared
// memory (which it is allowed here), asked once per process (devices alike).
template <typename Kernel, Kernel kKernel, int kSmem>
int ResidentCtas() {
  static const int ctas = [] {
    int n = 0;
    if (cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kKernel, kThreads, kSmem) != cudaSuccess) {
      cudaGetLastError();
      return 1;
    }
    return std::max(n, 1);
  }();
  return ctas;
}

// The kernels of one (type, head_dim): one request's splits, and a batch's pieces.
struct SplitKvInstance {
  SplitKernel kernel;
  BatchSplitKernel batch_kernel;
  int smem_bytes;  // dynamic, either kernel
  int resident_ctas;        // per SM, of `kernel`
  int batch_resident_ctas;  // per SM, of `batch_kernel`
};

template <typename T, int kD>
SplitKvInstance InstanceFor() {
  constexpr int kSmem = SplitKvTraits<T, kD>::kSmemBytes;
  return {SplitKvAttentionKernel<T, kD>, BatchSplitKvAttentionKernel<T, kD>, kSmem,
          ResidentCtas<SplitKernel, SplitKvAttentionKernel<T, kD>, kSmem>(),
          ResidentCtas<BatchSplitKernel, BatchSplitKvAttentionKernel<T, kD>, kSmem>()};
}

SplitKvInstance ChooseInstance(ElementType type, int64_t head_dim) {
  const bool bf16 = type == ElementType::kBF16;
  if (head_dim == 64) return bf16 ? InstanceFor<__nv_bfloat16, 64>() : InstanceFor<float, 64>();
  return bf16 ? InstanceFor<__nv_bfloat16, 128>() : InstanceFor<float, 128>();
}

// What the kernels can take, whichever op asks (SplitKvSupports, BatchSplitKvSupports).
bool ShapeSupported(ElementType type, int64_t head_dim, int64_t group_rows, int64_t num_kv_heads, int64_t k_stride,
                    int64_t v_stride) {
  const int64_t bytes = ElementBytes(type);
  const int64_t packed = num_kv_heads * head_dim;
  return (type == ElementType::kBF16 || type == ElementType::kF32) && (head_dim == 64 || head_dim == 128) &&
         group_rows <= kMaxGroupRows && num_kv_heads <= 65535 && StrideOr(k_stride, packed) * bytes % 16 == 0 &&
         StrideOr(v_stride, packed) * bytes % 16 == 0;
}

// The fields both ops fill alike: sizes of the rows, strides, scale.
SplitKvArgs ShapeArgs(int64_t q_len, int64_t num_q_heads, int64_t num_kv_heads, int64_t head_dim, int64_t k_stride,
                      int64_t v_stride, float scale) {
  SplitKvArgs a{};
  a.k_stride = StrideOr(k_stride, num_kv_heads * head_dim);
  a.v_stride = StrideOr(v_stride, num_kv_heads * head_dim);
  a.q_len = static_cast<int>(q_len);
  a.num_q_heads = static_cast<int>(num_q_heads);
  a.group = static_cast<int>(num_q_heads / num_kv_heads);
  a.rows = static_cast<int>(q_len * a.group);
  a.row_blocks = static_cast<int>(CeilDiv(a.rows, kCtaRows));
  const int64_t tiles = CeilDiv(std::min(a.rows, kCtaRows), 16);
  a.m_tiles = tiles == 1 ? 1 : (tiles == 2 ? 2 : 4);
  a.scale_log2 = scale * kLog2e;
  return a;
}

// CTAs of one wave (every SM full) per KV head and row block: the splits or items to aim for.
int64_t WaveShare(int resident_ctas, int64_t num_kv_heads, int row_blocks) {
  return std::max<int64_t>(1, int64_t{SmCount()} * resident_ctas / (num_kv_heads * row_blocks));
}

struct SplitKvPlan {
  int64_t kv_end;
  int64_t max_splits;  // what the workspace holds: monotone in kv_end
  int splits;          // <= max_splits, none empty
  int64_t chunk;
};

// One wave of CTAs (every SM full) over the KV heads and row blocks, no split
// under kMinKeysPerSplit keys; the keys divided evenly, rounded to kSplitAlign.
SplitKvPlan MakePlan(const AttentionParams& p, const SplitKvArgs& a, const SplitKvInstance& kernel) {
  SplitKvPlan plan;
  plan.kv_end = p.causal ? std::clamp<int64_t>(p.q_position0 + p.q_len - p.kv_position0, 0, p.kv_len)
                         : p.kv_len;
  plan.max_splits = std::max<int64_t>(1, std::min(WaveShare(kernel.resident_ctas, p.num_kv_heads, a.row_blocks),
                                                  CeilDiv(plan.kv_end, kMinKeysPerSplit)));
  const int64_t per_split = CeilDiv(std::max<int64_t>(plan.kv_end, 1), plan.max_splits);
  plan.chunk = CeilDiv(per_split, kSplitAlign) * kSplitAlign;
  plan.splits = static_cast<int>(std::max<int64_t>(1, CeilDiv(plan.kv_end, plan.chunk)));
  return plan;
}

int64_t WorkspaceBytes(const AttentionParams& p, const SplitKvPlan& plan) {
  if (plan.max_splits <= 1) return 0;
  return plan.max_splits * p.q_len * p.num_q_heads * (p.head_dim + 1) * int64_t{sizeof(float)};
}

SplitKvArgs ShapeArgs(const AttentionParams& p) {
  return ShapeArgs(p.q_len, p.num_q_heads, p.num_kv_heads, p.head_dim, p.k_stride, p.v_stride, p.scale);
}

SplitKvArgs ShapeArgs(const DecodeAttentionParams& p) {
  return ShapeArgs(1, p.num_q_heads, p.num_kv_heads, p.head_dim, p.k_stride, p.v_stride, p.scale);
}

// A batch's items to aim for, given a workspace for them.
int64_t BatchTarget(const DecodeAttentionParams& p) {
  const SplitKvInstance kernel = ChooseInstance(p.type, p.head_dim);
  return WaveShare(kernel.batch_resident_ctas, p.num_kv_heads, ShapeArgs(p).row_blocks);
}

// Partial outs (target + batch, Hq, D), partial lses (target + batch, Hq),
// then the plan (batch, 2) ints; none for a target of 1.
int64_t BatchWorkspaceBytes(const DecodeAttentionParams& p, int64_t target) {
  if (target <= 1) return 0;
  return ((target + p.batch) * p.num_q_heads * (p.head_dim + 1) + 2 * p.batch) * int64_t{sizeof(float)};
}

}  // namespace

bool SplitKvSupports(const AttentionParams& p) {
  const bool kv_aligned = p.kv_len == 0 || (Aligned16(p.k) && Aligned16(p.v));
  return ShapeSupported(p.type, p.head_dim, p.q_len * (p.num_q_heads / p.num_kv_heads), p.num_kv_heads, p.k_stride,
                        p.v_stride) &&
         p.q_len >= 1 && p.kv_len < (int64_t{1} << 31) && kv_aligned;
}

int64_t SplitKvWorkspaceBytes(const AttentionParams& p) {
  return WorkspaceBytes(p, MakePlan(p, ShapeArgs(p), ChooseInstance(p.type, p.head_dim)));
}

cudaError_t LaunchSplitKvAttention(const AttentionParams& p, cudaStream_t stream) {
  const SplitKvInstance kernel = ChooseInstance(p.type, p.head_dim);
  SplitKvArgs a = ShapeArgs(p);
  const SplitKvPlan plan = MakePlan(p, a, kernel);
  a.q = p.q;
  a.k = p.k;
  a.v = p.v;
  a.q_stride = StrideOr(p.q_stride, p.num_q_heads * p.head_dim);
  a.splits = plan.splits;
  a.chunk = plan.chunk;
  a.kv_len = p.kv_len;
  a.kv_end = plan.kv_end;
  a.visible0 = p.q_position0 - p.kv_position0 + 1;
  a.causal = p.causal;
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
  const dim3 grid(static_cast<unsigned>(a.row_blocks * plan.splits), static_cast<unsigned>(p.num_kv_heads));
  kernel.kernel<<<grid, kThreads, kernel.smem_bytes, stream>>>(a);
  if (plan.splits > 1) {
    SplitKvCombineKernel<<<static_cast<unsigned>(p.q_len * p.num_q_heads), kThreads,
                           sizeof(float) * plan.splits, stream>>>(a, static_cast<int>(p.head_dim));
  }
  return cudaGetLastError();
}

bool BatchSplitKvSupports(const DecodeAttentionParams& p) {
  return ShapeSupported(p.type, p.head_dim, p.num_q_heads / p.num_kv_heads, p.num_kv_heads, p.k_stride,
                        p.v_stride) &&
         p.batch <= kMaxDecodeBatch;
}

int64_t BatchSplitKvWorkspaceBytes(const DecodeAttentionParams& p) { return BatchWorkspaceBytes(p, BatchTarget(p)); }

cudaError_t LaunchBatchSplitKvAttention(const DecodeAttentionParams& p, cudaStream_t stream) {
  if (p.batch == 0) return cudaSuccess;
  const SplitKvInstance kernel = ChooseInstance(p.type, p.head_dim);
  int64_t target = BatchTarget(p);
  if (p.workspace == nullptr || p.workspace_bytes < BatchWorkspaceBytes(p, target)) target = 1;
  BatchSplitKvArgs b{};
  b.base = ShapeArgs(p);
  b.base.splits = 1;
  b.base.causal = false;
  b.q = p.q;
  b.q_request_stride = StrideOr(p.q_stride, p.num_q_heads * p.head_dim);
  b.k = p.k;
  b.v = p.v;
  b.kv_lens = p.kv_lens;
  b.batch = static_cast<int>(p.batch);
  b.target = static_cast<int>(target);
  b.out = p.out;
  b.lse = p.lse;
  const int64_t max_items = target + p.batch;
  if (target > 1) {
    b.part_out = static_cast<float*>(p.workspace);
    b.part_lse = b.part_out + max_items * p.num_q_heads * p.head_dim;
    b.plan = reinterpret_cast<int*>(b.part_lse + max_items * p.num_q_heads);
  }
  cudaError_t e = cudaFuncSetAttribute(kernel.batch_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       kernel.smem_bytes);
  if (e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(max_items * b.base.row_blocks), static_cast<unsigned>(p.num_kv_heads));
  e = cuda_launch::LaunchAfterPrior(kernel.batch_kernel, grid, kThreads, kernel.smem_bytes, stream, b);
  if (e != cudaSuccess || target <= 1) return e;
  const dim3 rows(static_cast<unsigned>(p.num_q_heads), static_cast<unsigned>(p.batch));
  return cuda_launch::LaunchAfterPrior(BatchSplitKvCombineKernel, rows, kThreads, sizeof(float) * target, stream,
                                       b.plan, b.part_out, b.part_lse, p.out, p.lse, static_cast<int>(p.num_q_heads),
                                       static_cast<int>(p.head_dim));
}

}  // namespace tessera::cuda_decode

namespace tessera::cuda {
namespace {

// Largest head_dim the plain kernel holds in registers.
constexpr int64_t kDecodeAttentionMaxHeadDim = 256;

// Beyond the shared checks: the kernels' limits.
absl::Status CheckDecodeAttentionSupported(const DecodeAttentionParams& p) {
  if (p.head_dim > kDecodeAttentionMaxHeadDim) {
    return absl::UnimplementedError(absl::StrCat("DecodeAttention (CUDA): head_dim must be <= ",
                                                 kDecodeAttentionMaxHeadDim, ". Given: ", p.head_dim));
  }
  if (p.batch > cuda_decode::kMaxDecodeBatch || p.num_q_heads > 65535) {
    return absl::UnimplementedError(absl::StrCat("DecodeAttention (CUDA): batch and num_q_heads must be <= ",
                                                 cuda_decode::kMaxDecodeBatch, ". Given: ", p.batch, " and ",
                                                 p.num_q_heads));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DecodeAttention(const DecodeAttentionParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "DecodeAttention";
  RETURN_IF_ERROR(CheckDecodeAttentionParams(p));
  RETURN_IF_ERROR(CheckDecodeAttentionSupported(p));
  if (p.batch == 0) return absl::OkStatus();
  if (cuda_decode::BatchSplitKvSupports(p)) {
    return cuda_host::FromCuda(kOp, cuda_decode::LaunchBatchSplitKvAttention(p, stream));
  }
  return cuda_host::FromCuda(kOp, cuda_decode::LaunchDecodeAttentionFfma(p, stream));
}

int64_t DecodeAttentionWorkspaceBytes(const DecodeAttentionParams& p) {
  if (!CheckDecodeAttentionParams(p).ok() || !CheckDecodeAttentionSupported(p).ok() || p.batch == 0 ||
      !cuda_decode::BatchSplitKvSupports(p)) {
    return 0;
  }
  return cuda_decode::BatchSplitKvWorkspaceBytes(p);
}

}  // namespace tessera::cuda
