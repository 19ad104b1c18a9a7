// Attention forward on Hopper tensor cores for bf16 q/k/v, head_dim 64 or 128,
// in the FlashAttention-3 manner: one CTA per (128 query rows, query head),
// tiles brought in by TMA, scores and outputs on warpgroup MMA (wgmma), an
// online softmax in registers, and no Lq×Lk matrix anywhere.
//
// CTA = 3 warpgroups. Warpgroup 0 is the producer: one thread loads the CTA's
// Q tile once, then each 128-key block of K and V into a 2-stage ring
// (mbarriers: "full" completes when TMA's bytes land, "empty" when all 8
// consumer warps are done with a stage). It gives its registers away
// (setmaxnreg) to warpgroups 1 and 2, the consumers, which own 64 query rows
// each and run, per key block:
//   S = Q·Kᵀ          wgmma, A = Q and B = K from shared memory (K-major)
//   mask, softmax     running max m and sum l per row, exp2 with the scale
//                     folded in, O rescaled by exp2(m_old − m_new)
//   O += P·V          wgmma, A = P from registers (the S accumulator layout
//                     is the A-fragment layout), B = V from shared memory
//                     read N-major (transposed by the instruction)
// Key blocks run from the last one a row sees down to 0, so the blocks that
// need the causal or length mask come first; blocks past the CTA's last
// visible key are never loaded. CTAs of the latest query blocks (the most
// keys) are launched first, every head's before the next block row.
//
// Variants (FlashVariant) compute the same bits and differ in scheduling.
// kPingpong (the default for head_dim 128): each consumer issues the next
// block's S = Q·Kᵀ together with this block's P·V and runs the softmax while
// they execute (FlashAttention-3's intra-warpgroup overlap), and the two
// consumers take turns issuing MMAs (named barriers), so one's softmax runs
// under the other's MMAs. kInOrder waits for each product before the next
// step: the plain schedule, faster for head_dim 64, and the reference the
// tests hold kPingpong to bit for bit. Both skip the rescale of O, exactly,
// for a warp whose rows kept their max.
//
// Masking follows kernels/attention.h: row i sees key j iff j < kv_len and,
// when causal, j <= i + delta with delta = q_position0 − kv_position0. A row
// that sees no key ends with l = 0: out 0, lse −inf. P is rounded to bf16
// for the P·V product; S, the softmax statistics, O, out and lse are fp32.
#include "kernels/cuda/flash_attention_sm90.h"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/flash_attention_ptx.cuh"

namespace tessera::cuda_flash {
namespace {

template <int kHeadDim_, FlashVariant kVariant_>
struct FlashTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr bool kPingpong = kVariant_ == FlashVariant::kPingpong;
  static constexpr int kBlockM = 128;  // query rows per CTA: 2 consumer warpgroups × 64
  static constexpr int kBlockN = 128;  // keys per step
  static constexpr int kStages = 2;    // K and V ring depth (3 measured slower)
  static constexpr int kConsumers = 2;
  static constexpr int kThreads = 128 * (1 + kConsumers);
  static constexpr int kConsumerWarps = 4 * kConsumers;
  static constexpr int kPanels = kHeadDim / 64;  // 64-column swizzled panels per row
  static constexpr int kQPanelBytes = kBlockM * 128;
  static constexpr int kKVPanelBytes = kBlockN * 128;
  static constexpr int kQBytes = kPanels * kQPanelBytes;
  static constexpr int kKVBytes = kPanels * kKVPanelBytes;  // one K or V tile
  // Shared memory: Q | K stages | V stages | mbarriers.
  static constexpr int kKOffset = kQBytes;
  static constexpr int kVOffset = kKOffset + kStages * kKVBytes;
  static constexpr int kBarrierOffset = kVOffset + kStages * kKVBytes;
  static constexpr int kBarriers = 1 + 4 * kStages;  // q_full, k_full, k_empty, v_full, v_empty
  static constexpr int kSmemBytes = kBarrierOffset + 8 * kBarriers + 1024;  // + alignment
  static constexpr int kScoreRegs = kBlockN / 2;  // S per thread: 64 rows × kBlockN / 128
  static constexpr int kOutRegs = kHeadDim / 2;   // O per thread
  static constexpr int kPSteps = kBlockN / 16;    // k-steps of P·V (P fragments)
  static constexpr int kProducerRegisters = 24;
  static constexpr int kConsumerRegisters = 240;
  static_assert(kHeadDim == 64 || kHeadDim == 128);
  static_assert(kBlockN == 128, "WgmmaSS is generated for N = 128");
  static_assert(kSmemBytes <= 227 * 1024, "over Hopper's opt-in shared memory per block");
  static_assert(kProducerRegisters * 128 + kConsumerRegisters * 128 * kConsumers <= 65536);
};

struct FlashParams {
  int q_len;
  int kv_len;
  int num_q_heads;
  int group;   // query heads per KV head
  int delta;   // row i sees key j iff j <= i + delta (causal only), clamped on the host
  int causal;  // 0 when no row can be cut off (not causal, or delta >= kv_len - 1)
  float scale_log2;  // softmax scale · log2(e)
  float* out;        // (Lq, Hq, D)
  float* lse;        // (Lq, Hq) or null
};

// Barriers of the ring, as shared-memory addresses.
template <typename Tr>
struct Barriers {
  uint32_t base;
  __device__ uint32_t q_full() const { return base; }
  __device__ uint32_t k_full(int s) const { return base + 8 * (1 + s); }
  __device__ uint32_t k_empty(int s) const { return base + 8 * (1 + Tr::kStages + s); }
  __device__ uint32_t v_full(int s) const { return base + 8 * (1 + 2 * Tr::kStages + s); }
  __device__ uint32_t v_empty(int s) const { return base + 8 * (1 + 3 * Tr::kStages + s); }
};

// Key blocks [0, n) hold every key some row of the CTA's tile sees.
template <typename Tr>
__device__ __forceinline__ int KeyBlocks(const FlashParams& p, int m0) {
  int n_end = p.kv_len;
  if (p.causal) {
    const int last_row = min(m0 + Tr::kBlockM, p.q_len) - 1;
    n_end = min(n_end, max(0, last_row + p.delta + 1));
  }
  return (n_end + Tr::kBlockN - 1) / Tr::kBlockN;
}

// ------------------------------------------------------------------ producer

template <typename Tr>
__device__ void Produce(const CUtensorMap& q_map, const CUtensorMap& k_map,
                        const CUtensorMap& v_map, uint32_t sq, uint32_t sk, uint32_t sv,
                        Barriers<Tr> bars, int head, int kv_head, int m0, int n_blocks) {
  MbarArriveExpectTx(bars.q_full(), Tr::kQBytes);
#pragma unroll
  for (int i = 0; i < Tr::kPanels; ++i) {
    TmaLoad3d(sq + i * Tr::kQPanelBytes, &q_map, bars.q_full(), 64 * i, head, m0);
  }
  for (int it = 0; it < n_blocks; ++it) {
    const int s = it % Tr::kStages;
    const uint32_t phase = (it / Tr::kStages) & 1;
    const int n0 = (n_blocks - 1 - it) * Tr::kBlockN;
    MbarWait(bars.k_empty(s), phase ^ 1);
    MbarArriveExpectTx(bars.k_full(s), Tr::kKVBytes);
#pragma unroll
    for (int i = 0; i < Tr::kPanels; ++i) {
      TmaLoad3d(sk + s * Tr::kKVBytes + i * Tr::kKVPanelBytes, &k_map, bars.k_full(s), 64 * i,
                kv_head, n0);
    }
    MbarWait(bars.v_empty(s), phase ^ 1);
    MbarArriveExpectTx(bars.v_full(s), Tr::kKVBytes);
#pragma unroll
    for (int i = 0; i < Tr::kPanels; ++i) {
      TmaLoad3d(sv + s * Tr::kKVBytes + i * Tr::kKVPanelBytes, &v_map, bars.v_full(s), 64 * i,
                kv_head, n0);
    }
  }
}

// ------------------------------------------------------------ the products

// S = Q·Kᵀ for the warpgroup's 64 rows (q_rows: its first row in the Q tile).
template <typename Tr>
__device__ __forceinline__ void ScoresWgmma(float (&s)[Tr::kScoreRegs], uint32_t q_rows,
                                            uint32_t k_tile) {
  WgmmaFence();
#pragma unroll
  for (int kk = 0; kk < Tr::kHeadDim / 16; ++kk) {
    const uint32_t k_bytes = (kk % 4) * 32;  // 16 bf16 along a 128-byte row
    const uint64_t a = MatrixDescriptor(q_rows + (kk / 4) * Tr::kQPanelBytes + k_bytes, 16, 1024);
    const uint64_t b = MatrixDescriptor(k_tile + (kk / 4) * Tr::kKVPanelBytes + k_bytes, 16, 1024);
    WgmmaSS(s, a, b, kk > 0 ? 1 : 0);
  }
  WgmmaCommit();
}

// O += P·V, P as bf16 A fragments (one per 16 keys).
template <typename Tr>
__device__ __forceinline__ void OutWgmma(float (&o)[Tr::kOutRegs],
                                         const uint32_t (&pa)[Tr::kPSteps][4], uint32_t v_tile) {
  WgmmaFence();
#pragma unroll
  for (int kk = 0; kk < Tr::kPSteps; ++kk) {
    // 16 keys = two 8-row groups of 128 bytes; panels of 64 columns are kKVPanelBytes apart.
    WgmmaRS(o, pa[kk], MatrixDescriptor(v_tile + kk * 2048, Tr::kKVPanelBytes, 1024));
  }
  WgmmaCommit();
}

// ------------------------------------------------------------------ softmax

// Thread (warp w, lane 4g + t) of a consumer warpgroup holds, for accumulator
// register 4j + e, row 16w + g + 8·(e / 2) and column 8j + 2t + (e % 2), in S
// (j < kBlockN / 8) and in O (j < D / 8) alike.
struct RowState {
  float m[2];  // running max of the raw scores of rows g and g + 8
  float l[2];  // this thread's part of the running sum (quad-reduced at the end)
};

// Masks block n0 where asked, updates m and l, turns S into P (fp32, in
// place) and returns the factor O must be rescaled by.
template <typename Tr>
__device__ __forceinline__ void Softmax(float (&s)[Tr::kScoreRegs], RowState& st,
                                        float (&rescale)[2], bool mask, int row0, int n0,
                                        const FlashParams& p, int t) {
  if (mask) {
    int end[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      end[h] = p.causal ? min(p.kv_len, row0 + 8 * h + p.delta + 1) : p.kv_len;
    }
#pragma unroll
    for (int j = 0; j < Tr::kBlockN / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (n0 + 8 * j + 2 * t + (e & 1) >= end[e >> 1]) s[4 * j + e] = -INFINITY;
      }
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = st.m[h];
#pragma unroll
    for (int j = 0; j < Tr::kBlockN / 8; ++j) {
      mx = fmaxf(mx, fmaxf(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]));
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    // A row that has seen nothing keeps m = -inf: subtract 0 so exp2 gives 0, not NaN.
    const float base = mx == -INFINITY ? 0.0f : mx * p.scale_log2;
    rescale[h] = Exp2(st.m[h] * p.scale_log2 - base);
    st.m[h] = mx;
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < Tr::kBlockN / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float& x = s[4 * j + 2 * h + e];
        x = Exp2(fmaf(x, p.scale_log2, -base));
        sum += x;
      }
    }
    st.l[h] = st.l[h] * rescale[h] + sum;
  }
}

// Skipped, exactly, when no row of the warp raised its max (factor 1 for all):
// after the first few key blocks that is most of them.
template <typename Tr>
__device__ __forceinline__ void Rescale(float (&o)[Tr::kOutRegs], const float (&rescale)[2]) {
  if (!__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f)) return;
#pragma unroll
  for (int i = 0; i < Tr::kOutRegs; ++i) o[i] *= rescale[(i >> 1) & 1];
}

// P (fp32, S layout) as bf16 A fragments: 16 keys per fragment.
template <typename Tr>
__device__ __forceinline__ void ToFragments(const float (&s)[Tr::kScoreRegs],
                                            uint32_t (&pa)[Tr::kPSteps][4]) {
#pragma unroll
  for (int kk = 0; kk < Tr::kPSteps; ++kk) {
#pragma unroll
    for (int r = 0; r < 4; ++r) pa[kk][r] = PackBf16(s[8 * kk + 2 * r], s[8 * kk + 2 * r + 1]);
  }
}

// ----------------------------------------------------------------- consumer

template <typename Tr>
struct ConsumerContext {
  const FlashParams& p;
  Barriers<Tr> bars;
  uint32_t q_rows;  // the warpgroup's 64 rows of the Q tile
  uint32_t sk, sv;  // stage 0 of the K and V rings
  int m0;           // first query row of the CTA
  int row0;         // the thread's first query row (the second is row0 + 8)
  int warpgroup;    // 0 or 1 among the consumers
  int lane;

  __device__ int KeyBlockStart(int it, int n_blocks) const {
    return (n_blocks - 1 - it) * Tr::kBlockN;
  }
  __device__ bool NeedsMask(int n0) const {
    return n0 + Tr::kBlockN > p.kv_len || (p.causal && n0 + Tr::kBlockN - 1 > m0 + p.delta);
  }
  __device__ void Release(uint32_t bar) const {
    if (lane == 0) MbarArrive(bar);
  }
  // Turn-taking of the two consumer warpgroups on the tensor cores.
  __device__ void WaitTurn() const { NamedBarrierSync(1 + warpgroup, 256); }
  __device__ void PassTurn() const { NamedBarrierArrive(2 - warpgroup, 256); }
};

// One key block at a time: S, softmax, P·V, each finished before the next.
template <typename Tr>
__device__ void MainLoopInOrder(const ConsumerContext<Tr>& c, int n_blocks,
                                float (&o)[Tr::kOutRegs], RowState& st) {
  float s[Tr::kScoreRegs];
#pragma unroll
  for (int i = 0; i < Tr::kScoreRegs; ++i) s[i] = 0.0f;
  uint32_t pa[Tr::kPSteps][4];
  for (int it = 0; it < n_blocks; ++it) {
    const int stage = it % Tr::kStages;
    const uint32_t phase = (it / Tr::kStages) & 1;
    const int n0 = c.KeyBlockStart(it, n_blocks);
    MbarWait(c.bars.k_full(stage), phase);
    FenceRegisters(s);
    ScoresWgmma<Tr>(s, c.q_rows, c.sk + stage * Tr::kKVBytes);
    WgmmaWait<0>();
    FenceRegisters(s);
    c.Release(c.bars.k_empty(stage));
    float rescale[2];
    Softmax<Tr>(s, st, rescale, c.NeedsMask(n0), c.row0, n0, c.p, c.lane & 3);
    Rescale<Tr>(o, rescale);
    ToFragments<Tr>(s, pa);
    MbarWait(c.bars.v_full(stage), phase);
    FenceRegisters(o);
    OutWgmma<Tr>(o, pa, c.sv + stage * Tr::kKVBytes);
    WgmmaWait<0>();
    FenceRegisters(o);
    FenceRegisters(pa);
    c.Release(c.bars.v_empty(stage));
  }
}

// S of block it + 1 and P·V of block it in flight together, the softmax of
// block it + 1 computed while they run (FlashAttention-3's intra-warpgroup
// overlap), the two consumer warpgroups taking turns to issue their MMAs so
// that one's softmax runs under the other's MMAs.
template <typename Tr>
__device__ void MainLoopPingpong(const ConsumerContext<Tr>& c, int n_blocks,
                                   float (&o)[Tr::kOutRegs], RowState& st) {
  float s[Tr::kScoreRegs];
#pragma unroll
  for (int i = 0; i < Tr::kScoreRegs; ++i) s[i] = 0.0f;
  uint32_t pa[Tr::kPSteps][4];
  float rescale[2];
  if (c.warpgroup == 1) NamedBarrierArrive(1, 256);  // warpgroup 0 goes first
  {
    const int n0 = c.KeyBlockStart(0, n_blocks);
    MbarWait(c.bars.k_full(0), 0);
    c.WaitTurn();
    FenceRegisters(s);
    ScoresWgmma<Tr>(s, c.q_rows, c.sk);
    c.PassTurn();
    WgmmaWait<0>();
    FenceRegisters(s);
    c.Release(c.bars.k_empty(0));
    Softmax<Tr>(s, st, rescale, c.NeedsMask(n0), c.row0, n0, c.p, c.lane & 3);
    ToFragments<Tr>(s, pa);
  }
  for (int it = 1; it < n_blocks; ++it) {
    const int stage = it % Tr::kStages;
    const uint32_t phase = (it / Tr::kStages) & 1;
    const int prev = (it - 1) % Tr::kStages;
    const uint32_t prev_phase = ((it - 1) / Tr::kStages) & 1;
    const int n0 = c.KeyBlockStart(it, n_blocks);
    MbarWait(c.bars.k_full(stage), phase);
    c.WaitTurn();
    FenceRegisters(s);
    ScoresWgmma<Tr>(s, c.q_rows, c.sk + stage * Tr::kKVBytes);
    MbarWait(c.bars.v_full(prev), prev_phase);
    FenceRegisters(o);
    OutWgmma<Tr>(o, pa, c.sv + prev * Tr::kKVBytes);
    c.PassTurn();
    WgmmaWait<1>();  // S done, P·V may still run
    FenceRegisters(s);
    c.Release(c.bars.k_empty(stage));
    Softmax<Tr>(s, st, rescale, c.NeedsMask(n0), c.row0, n0, c.p, c.lane & 3);
    WgmmaWait<0>();
    FenceRegisters(o);
    FenceRegisters(pa);
    c.Release(c.bars.v_empty(prev));
    Rescale<Tr>(o, rescale);
    ToFragments<Tr>(s, pa);
  }
  {
    const int last = (n_blocks - 1) % Tr::kStages;
    MbarWait(c.bars.v_full(last), ((n_blocks - 1) / Tr::kStages) & 1);
    c.WaitTurn();
    FenceRegisters(o);
    OutWgmma<Tr>(o, pa, c.sv + last * Tr::kKVBytes);
    if (c.warpgroup == 0) c.PassTurn();  // warpgroup 1 takes no further turn
    WgmmaWait<0>();
    FenceRegisters(o);
    FenceRegisters(pa);
    c.Release(c.bars.v_empty(last));
  }
}

template <typename Tr>
__device__ void Consume(const FlashParams& p, uint32_t sq, uint32_t sk, uint32_t sv,
                        Barriers<Tr> bars, int head, int m0, int n_blocks) {
  const int warpgroup = threadIdx.x / 128 - 1;
  const int warp = (threadIdx.x / 32) % 4;
  const int lane = threadIdx.x % 32;
  const int t = lane & 3;
  const ConsumerContext<Tr> c{p,  bars, sq + warpgroup * 64 * 128, sk, sv, m0,
                              m0 + warpgroup * 64 + warp * 16 + lane / 4, warpgroup, lane};
  float o[Tr::kOutRegs];
#pragma unroll
  for (int i = 0; i < Tr::kOutRegs; ++i) o[i] = 0.0f;
  RowState st{{-INFINITY, -INFINITY}, {0.0f, 0.0f}};
  if (n_blocks > 0) {
    MbarWait(bars.q_full(), 0);
    if constexpr (Tr::kPingpong) {
      MainLoopPingpong<Tr>(c, n_blocks, o, st);
    } else {
      MainLoopInOrder<Tr>(c, n_blocks, o, st);
    }
  }

  // Epilogue: out = O / l, lse = m·scale + ln l (natural log), straight from registers.
  constexpr float kLn2 = 0.6931471805599453f;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float l = st.l[h];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = c.row0 + 8 * h;
    if (row >= p.q_len) continue;
    const bool seen = l > 0.0f;
    const float inv = seen ? 1.0f / l : 0.0f;
    float* dst = p.out + (static_cast<int64_t>(row) * p.num_q_heads + head) * Tr::kHeadDim + 2 * t;
#pragma unroll
    for (int j = 0; j < Tr::kHeadDim / 8; ++j) {
      *reinterpret_cast<float2*>(dst + 8 * j) =
          make_float2(o[4 * j + 2 * h] * inv, o[4 * j + 2 * h + 1] * inv);
    }
    if (p.lse != nullptr && t == 0) {
      p.lse[static_cast<int64_t>(row) * p.num_q_heads + head] =
          seen ? (st.m[h] * p.scale_log2 + log2f(l)) * kLn2 : -INFINITY;
    }
  }
}

// ------------------------------------------------------------------- kernel

template <typename Tr>
__global__ void __launch_bounds__(Tr::kThreads, 1)
    FlashAttentionKernel(const __grid_constant__ CUtensorMap q_map,
                         const __grid_constant__ CUtensorMap k_map,
                         const __grid_constant__ CUtensorMap v_map, const FlashParams p) {
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (SmemAddress(smem_raw) + 1023) & ~1023u;  // 128-byte swizzle atoms
  const uint32_t sq = base;
  const uint32_t sk = base + Tr::kKOffset;
  const uint32_t sv = base + Tr::kVOffset;
  const Barriers<Tr> bars{base + Tr::kBarrierOffset};

  const int head = blockIdx.x;
  const int m0 = (gridDim.y - 1 - blockIdx.y) * Tr::kBlockM;  // latest rows first
  const int n_blocks = KeyBlocks<Tr>(p, m0);

  if (threadIdx.x == 0) {
    MbarInit(bars.q_full(), 1);
    for (int s = 0; s < Tr::kStages; ++s) {
      MbarInit(bars.k_full(s), 1);
      MbarInit(bars.v_full(s), 1);
      MbarInit(bars.k_empty(s), Tr::kConsumerWarps);
      MbarInit(bars.v_empty(s), Tr::kConsumerWarps);
    }
    MbarInitFence();
  }
  __syncthreads();

  if (threadIdx.x / 128 == 0) {
    RegistersDecrease<Tr::kProducerRegisters>();
    if (threadIdx.x == 0 && n_blocks > 0) {
      Produce<Tr>(q_map, k_map, v_map, sq, sk, sv, bars, head, head / p.group, m0, n_blocks);
    }
  } else {
    RegistersIncrease<Tr::kConsumerRegisters>();
    Consume<Tr>(p, sq, sk, sv, bars, head, m0, n_blocks);
  }
}

// --------------------------------------------------------------------- host

using EncodeTiledFn = PFN_cuTensorMapEncodeTiled_v12000;

// cuTensorMapEncodeTiled from the driver, found through the runtime (no link
// against libcuda); null if the driver has none.
EncodeTiledFn EncodeTiled() {
  static const EncodeTiledFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      return static_cast<EncodeTiledFn>(nullptr);
    }
    return reinterpret_cast<EncodeTiledFn>(f);
  }();
  return fn;
}

// A (tokens, heads, head_dim) bf16 view with token stride `stride` elements,
// read in boxes of (box_rows tokens, 1 head, 64 columns), 128-byte swizzled.
bool EncodeRows(EncodeTiledFn encode, CUtensorMap* map, const void* data, int64_t tokens,
                int64_t heads, int64_t head_dim, int64_t stride, int box_rows) {
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(heads),
                              static_cast<cuuint64_t>(tokens)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(head_dim) * 2,
                                 static_cast<cuuint64_t>(stride) * 2};  // bytes
  const cuuint32_t box[3] = {64, 1, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(data), dims, strides,
                box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

constexpr int64_t kMaxLength = int64_t{1} << 30;  // q_len, kv_len: row + delta stays in int32
constexpr int64_t kBlockRows = 128;               // FlashTraits::kBlockM

int64_t Stride(int64_t given, int64_t packed) { return given == 0 ? packed : given; }

bool Aligned(const void* ptr, uintptr_t bytes) {
  return reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
}

template <typename Tr>
cudaError_t Launch(const AttentionParams& p, cudaStream_t stream) {
  const EncodeTiledFn encode = EncodeTiled();
  if (encode == nullptr) return cudaErrorNotSupported;
  const int64_t d = p.head_dim;
  CUtensorMap q_map, k_map, v_map;
  if (!EncodeRows(encode, &q_map, p.q, p.q_len, p.num_q_heads, d,
                  Stride(p.q_stride, p.num_q_heads * d), Tr::kBlockM) ||
      !EncodeRows(encode, &k_map, p.k, p.kv_len, p.num_kv_heads, d,
                  Stride(p.k_stride, p.num_kv_heads * d), Tr::kBlockN) ||
      !EncodeRows(encode, &v_map, p.v, p.kv_len, p.num_kv_heads, d,
                  Stride(p.v_stride, p.num_kv_heads * d), Tr::kBlockN)) {
    return cudaErrorInvalidValue;
  }
  FlashParams fp{};
  fp.q_len = static_cast<int>(p.q_len);
  fp.kv_len = static_cast<int>(p.kv_len);
  fp.num_q_heads = static_cast<int>(p.num_q_heads);
  fp.group = static_cast<int>(p.num_q_heads / p.num_kv_heads);
  const int64_t delta = p.q_position0 - p.kv_position0;
  fp.causal = p.causal && delta < p.kv_len - 1 ? 1 : 0;
  fp.delta = fp.causal ? static_cast<int>(delta < -p.q_len - 1 ? -p.q_len - 1 : delta) : 0;
  fp.scale_log2 = p.scale * 1.4426950408889634f;
  fp.out = p.out;
  fp.lse = p.lse;

  const auto kernel = FlashAttentionKernel<Tr>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       Tr::kSmemBytes);
  if (e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(p.num_q_heads),
                  static_cast<unsigned>((p.q_len + Tr::kBlockM - 1) / Tr::kBlockM));
  kernel<<<grid, Tr::kThreads, Tr::kSmemBytes, stream>>>(q_map, k_map, v_map, fp);
  return cudaGetLastError();
}

template <int kHeadDim>
cudaError_t LaunchVariant(const AttentionParams& p, FlashVariant variant, cudaStream_t stream) {
  switch (variant) {
    case FlashVariant::kInOrder:
      return Launch<FlashTraits<kHeadDim, FlashVariant::kInOrder>>(p, stream);
    case FlashVariant::kPingpong:
      return Launch<FlashTraits<kHeadDim, FlashVariant::kPingpong>>(p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

FlashVariant DefaultFlashVariant(int64_t head_dim) {
  return head_dim == 64 ? FlashVariant::kInOrder : FlashVariant::kPingpong;
}

bool FlashAttentionSm90Supports(const AttentionParams& p) {
  const int64_t d = p.head_dim;
  const int64_t q_stride = Stride(p.q_stride, p.num_q_heads * d);
  const int64_t k_stride = Stride(p.k_stride, p.num_kv_heads * d);
  const int64_t v_stride = Stride(p.v_stride, p.num_kv_heads * d);
  return p.type == ElementType::kBF16 && (d == 64 || d == 128) && p.q_len >= 1 &&
         p.kv_len >= 1 && p.q_len < kMaxLength && p.kv_len < kMaxLength &&
         (p.q_len + kBlockRows - 1) / kBlockRows <= 65535 && p.num_q_heads <= INT32_MAX &&
         q_stride % 8 == 0 && k_stride % 8 == 0 && v_stride % 8 == 0 && Aligned(p.q, 16) &&
         Aligned(p.k, 16) && Aligned(p.v, 16) && Aligned(p.out, 8);
}

cudaError_t LaunchFlashAttentionSm90(const AttentionParams& p, FlashVariant variant,
                                     cudaStream_t stream) {
  if (p.head_dim == 64) return LaunchVariant<64>(p, variant, stream);
  if (p.head_dim == 128) return LaunchVariant<128>(p, variant, stream);
  return cudaErrorInvalidValue;
}

}  // namespace tessera::cuda_flash
