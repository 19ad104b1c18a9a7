// SsdScan for bf16 x, B, C on tensor cores: one fused kernel, mma.sync
// m16n8k16 (bf16 operands, fp32 accumulation), the state in fp32 registers.
// ssd_scan.cu sends head_dim 64 with state_size 64 or 128 (aligned rows) to the
// wgmma kernel instead (ssd_scan_sm90.cu); this one runs every other shape,
// and those too under TESSERA_SSD_KERNEL=mma.
//
// Why one kernel: the state a chunk hands to the next never leaves the
// multiprocessor, so the traffic is the compulsory one (x, B, C, dt in; y and
// the final state out), where a split into launches (ours in ssd_scan.cu,
// mamba_ssm's) writes every chunk's state and reads it back. The price is a
// sequential walk over the chunks per block, so the parallelism is one block
// per (head, kP columns of head_dim): 2H blocks for the usual P = 64, N = 128
// (kP = 32, two blocks per multiprocessor, so that one computes while the
// other waits at a barrier or for its operands).
//
// A block walks its head in chunks of kT = 64 tokens (the last shorter). Warp
// w owns row tile i (16 tokens) and half of the block's kP output columns,
// warps w and 7 - w sharing a row tile so that the causal work is even across
// the four schedulers; for the state it owns kP/2 rows (p) × N/4 columns (n).
// Per chunk:
//   1. every warp scans dt·A of the chunk itself: cum_t, exp(cum_t),
//      w_s = exp(cum_last - cum_s)·dt_s (fp32, log2 units)
//   2. CB = C·Bᵀ on the causal 16×8 tiles of its row tile (C fragments kept)
//   3. M = CB ∘ exp(cum_t - cum_s)·dt_s (s <= t, else 0) to shared memory as bf16
//   4. y = exp(cum_t)·(C·h_inᵀ) + M·X + D·x, stored straight from registers
//   5. h = exp(cum_last)·h + (X ∘ w)ᵀ·B, the state in fp32 accumulators
//   6. h as bf16 to shared memory: the operand of the next chunk's step 4
// The next chunk's x, B, C, dt arrive by cp.async (kStages buffers) while one
// is computed. Rounding beyond the bf16 inputs: M, X ∘ w and the copy of h
// read by step 4 are bf16 operands; sums, decays and the state are fp32.
//
// Speed (H200, nemotronh-8b layer, bench/ssd_bench.cc + ssd_peer.py): 0.26 /
// 1.02 / 4.03 ms at 4K / 16K / 64K tokens, 2.6 / 1.3 / 1.3x mamba_ssm's Triton
// kernel, 3.5 GB of compulsory traffic at 64K moving at ~0.9 TB/s: far from the
// memory floor. By the SASS, a warp issues about 950 instructions per chunk
// (address arithmetic, scans, masks, fragment scaling, next to ~80 mma), and by
// count a block reads about 225 KB of shared memory per chunk in ldmatrix
// fragments: the two limits this mma.sync design meets (estimates, no profiler
// run). Going from one block to two per multiprocessor gained 9%. The wgmma
// kernel is the step past both limits.
#include "kernels/cuda/ssd_scan_bf16.cuh"

#include <cuda_bf16.h>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/sm80_ptx.cuh"
#include "kernels/cuda/ssd_bf16_ops.cuh"

namespace tessera::cuda_ssd {
namespace {

using cuda_sm80::CpAsync16;
using cuda_sm80::CpAsync4;
using cuda_sm80::CpAsyncCommit;
using cuda_sm80::CpAsyncWait;
using cuda_sm80::LdMatrixX4;
using cuda_sm80::LdMatrixX4Trans;
using cuda_sm80::MmaBf16;
using cuda_sm80::SharedAddress;

// Two instantiations: N <= 128 with 32 head_dim columns per block, small
// enough (110 KB of shared memory, <= 128 registers) for two blocks per
// multiprocessor, whose chunks then overlap; N <= 256 with 64 columns, one block.
template <int kStateCols, int kHeadDimCols>
struct SsdBf16Traits {
  static constexpr int kT = 64;            // tokens per chunk
  static constexpr int kP = kHeadDimCols;  // head_dim columns per block
  static constexpr int kN = kStateCols;    // state columns (state_size, zero-padded)
  static constexpr int kWarps = 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlocksPerSm = kP == 32 ? 2 : 1;
  static constexpr int kStages = 2;                     // chunk buffers
  static constexpr int kHBuffers = kN <= 128 ? 2 : 1;  // bf16 copies of h
  static constexpr bool kCInRegisters = kN <= 128;     // step 2's C fragments reused in step 4
  static constexpr int kKSteps = kN / 16;              // k16 steps over the state
  static constexpr int kYTiles = kP / 16;              // n8 tiles of a warp's output columns
  static constexpr int kStateM = kP / 32;              // m16 tiles of a warp's state rows
  static constexpr int kStateTiles = kN / 32;          // n8 tiles of a warp's state columns
  // Row pitches in bf16 elements: 16 bytes of padding put the 8 rows an
  // ldmatrix reads in distinct banks (pitch / 16 bytes is odd).
  static constexpr int kXPitch = kP + 8;
  static constexpr int kBCPitch = kN + 8;
  static constexpr int kMPitch = kT + 8;
  static constexpr int kHPitch = kN + 8;
  // Shared memory, bytes: kStages × (x, B, C, dt), M, kHBuffers × h, per-warp scans.
  static constexpr int kXBytes = kT * kXPitch * 2;
  static constexpr int kBCBytes = kT * kBCPitch * 2;
  static constexpr int kStageBytes = kXBytes + 2 * kBCBytes + kT * 4;
  static constexpr int kMOffset = kStages * kStageBytes;
  static constexpr int kHOffset = kMOffset + kT * kMPitch * 2;
  static constexpr int kHBytes = kP * kHPitch * 2;
  static constexpr int kScanOffset = kHOffset + kHBuffers * kHBytes;
  static constexpr int kSmemBytes = kScanOffset + kWarps * 3 * kT * 4;
  static_assert(kN % 64 == 0, "a warp's state block is whole 16-column pairs");
  static_assert(kT == 64 && (kP == 32 || kP == 64) && kWarps == 8,
                "the warp roles assume 4 row tiles × 2 column halves");
  static_assert(kStageBytes % 16 == 0 && kHBytes % 16 == 0 && kMOffset % 16 == 0,
                "cp.async and ldmatrix need 16-byte aligned rows");
  static_assert(kSmemBytes * kBlocksPerSm <= 227 * 1024, "more shared memory than blocks may have");
};

// The scan with every stride resolved.
struct Bf16ScanArgs {
  int64_t seq_len, heads, head_dim, state_size, heads_per_group;
  int64_t x_stride, dt_stride, b_stride, c_stride;  // elements
  int p_tiles;                                      // blocks per head (head_dim / kP)
  bool full_cols;                                   // every block's kP columns are < head_dim
  bool x_vec, b_vec, c_vec;  // rows may be copied in aligned 16-byte pieces
  bool y_vec;                // y may be stored in aligned float2
  const __nv_bfloat16* x;    // (L, H, P)
  const float* dt;           // (L, H)
  const float* A;            // (H)
  const __nv_bfloat16* B;    // (L, G, N)
  const __nv_bfloat16* C;    // (L, G, N)
  const float* D;            // (H) or null
  const float* initial_state;  // (H, P, N) or null
  float* y;                    // (L, H, P)
  float* final_state;          // (H, P, N) or null
  float* log_decay;            // (H) or null
};

// Barrier 1 + `pair` (0 is __syncthreads) over the 64 threads of two warps; the
// ids are immediates so that the block reserves 5 hardware barriers, not 16.
__device__ __forceinline__ void PairBarrier(int pair) {
  switch (pair) {
    case 0:
      asm volatile("bar.sync 1, 64;\n" ::: "memory");
      break;
    case 1:
      asm volatile("bar.sync 2, 64;\n" ::: "memory");
      break;
    case 2:
      asm volatile("bar.sync 3, 64;\n" ::: "memory");
      break;
    default:
      asm volatile("bar.sync 4, 64;\n" ::: "memory");
      break;
  }
}

// Rows [0, rows) × columns [0, cols) of a (kRows, kCols) tile from global
// memory (row stride `stride` elements) into shared memory (row pitch kPitch),
// zeros elsewhere: by cp.async in 16-byte pieces when `vec` (aligned rows,
// cols % 8 == 0), thread i copying column piece i % (kCols / 8) of every
// (kThreads / (kCols / 8))-th row; else element by element.
template <int kRows, int kCols, int kPitch, int kThreads>
__device__ __forceinline__ void LoadTile(__nv_bfloat16* dst, const __nv_bfloat16* src,
                                         int64_t stride, int rows, int cols, bool vec) {
  if (vec) {
    constexpr int kPiecesPerRow = kCols / 8;
    constexpr int kRowStep = kThreads / kPiecesPerRow;
    static_assert(kThreads % kPiecesPerRow == 0 && kRows % kRowStep == 0, "whole rows per pass");
    const int q = (threadIdx.x % kPiecesPerRow) * 8;
    const int r0 = threadIdx.x / kPiecesPerRow;
    const bool q_valid = q < cols;
    const __nv_bfloat16* from = src + r0 * stride + q;
    const uint32_t to = SharedAddress(dst + r0 * kPitch + q);
#pragma unroll
    for (int j = 0; j < kRows / kRowStep; ++j) {
      const bool valid = q_valid && r0 + j * kRowStep < rows;
      CpAsync16(to + 2 * j * kRowStep * kPitch, valid ? from + j * kRowStep * stride : src, valid);
    }
  } else {
    for (int e = threadIdx.x; e < kRows * kCols; e += kThreads) {
      const int r = e / kCols;
      const int q = e - r * kCols;
      dst[r * kPitch + q] = (r < rows && q < cols) ? src[r * stride + q] : __float2bfloat16(0.0f);
    }
  }
}

// Shared memory of one chunk buffer.
template <class Tr>
struct StageView {
  __nv_bfloat16* x;  // (kT, kXPitch): x[t][p]
  __nv_bfloat16* b;  // (kT, kBCPitch): B[t][n]
  __nv_bfloat16* c;  // (kT, kBCPitch): C[t][n]
  float* dt;         // (kT)
  __device__ explicit StageView(uint8_t* base)
      : x(reinterpret_cast<__nv_bfloat16*>(base)),
        b(reinterpret_cast<__nv_bfloat16*>(base + Tr::kXBytes)),
        c(reinterpret_cast<__nv_bfloat16*>(base + Tr::kXBytes + Tr::kBCBytes)),
        dt(reinterpret_cast<float*>(base + Tr::kXBytes + 2 * Tr::kBCBytes)) {}
};

// Starts the copies of chunk `chunk` (tokens past L and columns past P or N as zeros).
template <class Tr>
__device__ __forceinline__ void LoadChunk(const Bf16ScanArgs& a, int64_t head, int64_t group,
                                          int p0, int64_t chunk, StageView<Tr> st) {
  const int64_t t0 = chunk * Tr::kT;
  const int len = static_cast<int>(a.seq_len - t0 < Tr::kT ? a.seq_len - t0 : Tr::kT);
  const int p_cols = static_cast<int>(a.head_dim - p0 < Tr::kP ? a.head_dim - p0 : Tr::kP);
  const int n_cols = static_cast<int>(a.state_size);
  LoadTile<Tr::kT, Tr::kP, Tr::kXPitch, Tr::kThreads>(
      st.x, a.x + t0 * a.x_stride + head * a.head_dim + p0, a.x_stride, len, p_cols, a.x_vec);
  LoadTile<Tr::kT, Tr::kN, Tr::kBCPitch, Tr::kThreads>(
      st.b, a.B + t0 * a.b_stride + group * a.state_size, a.b_stride, len, n_cols, a.b_vec);
  LoadTile<Tr::kT, Tr::kN, Tr::kBCPitch, Tr::kThreads>(
      st.c, a.C + t0 * a.c_stride + group * a.state_size, a.c_stride, len, n_cols, a.c_vec);
  for (int r = threadIdx.x; r < Tr::kT; r += Tr::kThreads) {
    const bool valid = r < len;
    CpAsync4(SharedAddress(st.dt + r), valid ? a.dt + (t0 + r) * a.dt_stride + head : a.dt,
             valid);
  }
}

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kBlocksPerSm)
    SsdScanBf16Kernel(const Bf16ScanArgs a) {
  constexpr int kT = Tr::kT;
  extern __shared__ __align__(16) uint8_t smem[];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int frag_row = lane / 4;        // accumulator rows frag_row, frag_row + 8
  const int frag_col = 2 * (lane % 4);  // accumulator columns frag_col, frag_col + 1
  const int64_t head = blockIdx.x / a.p_tiles;
  const int p0 = static_cast<int>(blockIdx.x % a.p_tiles) * Tr::kP;
  const int64_t group = head / a.heads_per_group;
  const int64_t P = a.head_dim, N = a.state_size;
  const int64_t chunks = (a.seq_len + kT - 1) / kT;

  // Warp roles (file comment): output row tile and column half; state block.
  const int row_tile = warp < 4 ? warp : 7 - warp;
  const int col_half = warp < 4 ? 0 : 1;
  const int t_lo = 16 * row_tile + frag_row, t_hi = t_lo + 8;  // this thread's output rows
  const int out_col0 = (Tr::kP / 2) * col_half;
  const int state_p0 = (Tr::kP / 2) * (warp / 4);
  const int state_n0 = (warp % 4) * (Tr::kN / 4);

  auto stage = [&](int64_t chunk) {
    return StageView<Tr>(smem + static_cast<int>(chunk % Tr::kStages) * Tr::kStageBytes);
  };
  __nv_bfloat16* m_tile = reinterpret_cast<__nv_bfloat16*>(smem + Tr::kMOffset);  // (kT, kMPitch)
  auto h_copy = [&](int64_t chunk) {  // (kP, kHPitch): h[p][n] entering `chunk`, bf16
    return reinterpret_cast<__nv_bfloat16*>(smem + Tr::kHOffset +
                                            static_cast<int>(chunk % Tr::kHBuffers) * Tr::kHBytes);
  };
  float* cum2 = reinterpret_cast<float*>(smem + Tr::kScanOffset) + warp * 3 * kT;  // (kT) log2
  float* decay_in = cum2 + kT;  // (kT) exp(cum_t)
  float* weight = cum2 + 2 * kT;  // (kT) exp(cum_last - cum_s)·dt_s

  for (int s = 0; s < Tr::kStages - 1; ++s) {
    if (s < chunks) LoadChunk<Tr>(a, head, group, p0, s, stage(s));
    CpAsyncCommit();
  }

  // The state block, fp32: h[state_p0 + 16 mi + frag_row (+8)][state_n0 + 8 nt + frag_col (+1)].
  float state[Tr::kStateM][Tr::kStateTiles][4];
  const float* h_in = a.initial_state == nullptr ? nullptr : a.initial_state + head * P * N;
#pragma unroll
  for (int mi = 0; mi < Tr::kStateM; ++mi) {
#pragma unroll
    for (int nt = 0; nt < Tr::kStateTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t p = p0 + state_p0 + 16 * mi + frag_row + (e >= 2 ? 8 : 0);
        const int64_t n = state_n0 + 8 * nt + frag_col + (e & 1);
        state[mi][nt][e] = (h_in != nullptr && p < P && n < N) ? h_in[p * N + n] : 0.0f;
      }
    }
  }
  auto store_state_copy = [&](__nv_bfloat16* dst) {
#pragma unroll
    for (int mi = 0; mi < Tr::kStateM; ++mi) {
#pragma unroll
      for (int nt = 0; nt < Tr::kStateTiles; ++nt) {
        const int p = state_p0 + 16 * mi + frag_row;
        const int n = state_n0 + 8 * nt + frag_col;
        *reinterpret_cast<uint32_t*>(dst + p * Tr::kHPitch + n) =
            PackBf16(state[mi][nt][0], state[mi][nt][1]);
        *reinterpret_cast<uint32_t*>(dst + (p + 8) * Tr::kHPitch + n) =
            PackBf16(state[mi][nt][2], state[mi][nt][3]);
      }
    }
  };
  bool state_is_zero = h_in == nullptr;
  if (!state_is_zero) store_state_copy(h_copy(0));

  const float a_head = a.A[head];
  const float skip = a.D == nullptr ? 0.0f : a.D[head];
  const int64_t y_stride = a.heads * P;
  float log_decay = 0.0f;
  constexpr float kLog2e = 1.4426950408889634f;

  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    CpAsyncWait<Tr::kStages - 2>();  // this chunk's copies (issued kStages - 1 chunks ago)
    __syncthreads();                 // ... by every thread; the previous chunk is done
    if (chunk + Tr::kStages - 1 < chunks) {
      LoadChunk<Tr>(a, head, group, p0, chunk + Tr::kStages - 1, stage(chunk + Tr::kStages - 1));
    }
    CpAsyncCommit();
    const StageView<Tr> st = stage(chunk);
    const int64_t t0 = chunk * kT;
    const int len = static_cast<int>(a.seq_len - t0 < kT ? a.seq_len - t0 : kT);

    // 1. cum_t = Σ_{τ<=t} dt_τ·A within the chunk; lane l has tokens 2l, 2l + 1.
    float total2;  // cum_last·log2(e)
    {
      const float dt0 = st.dt[2 * lane], dt1 = st.dt[2 * lane + 1];
      const ChunkCumsum cum = WarpChunkCumsum(dt0 * a_head, dt1 * a_head, lane);
      log_decay += cum.total;
      total2 = cum.total * kLog2e;
      const float q0 = cum.cum0 * kLog2e, q1 = cum.cum1 * kLog2e;
      cum2[2 * lane] = q0;
      cum2[2 * lane + 1] = q1;
      decay_in[2 * lane] = Exp2(q0);
      decay_in[2 * lane + 1] = Exp2(q1);
      weight[2 * lane] = Exp2(total2 - q0) * dt0;
      weight[2 * lane + 1] = Exp2(total2 - q1) * dt1;
      __syncwarp();
    }

    // 2. CB on units (row_tile, j), j in [j0, j0 + units): keys s in [8j, 8j + 8).
    const uint32_t c_frag = SharedAddress(st.c) +
                            2 * ((16 * row_tile + lane % 16) * Tr::kBCPitch + (lane / 16) * 8);
    uint32_t c_kept[Tr::kCInRegisters ? Tr::kKSteps : 1][4];
    const int units = row_tile + 1;
    const int j0 = col_half * units;
    float cb[4][4];
#pragma unroll
    for (int u = 0; u < 4; ++u) cb[u][0] = cb[u][1] = cb[u][2] = cb[u][3] = 0.0f;
    {
      const uint32_t b_frag =
          SharedAddress(st.b) + 2 * ((8 * j0 + lane % 8) * Tr::kBCPitch + (lane / 8) * 8);
#pragma unroll
      for (int k = 0; k < Tr::kKSteps; k += 2) {
        uint32_t c0[4], c1[4];
        LdMatrixX4(c_frag + 2 * 16 * k, c0);
        LdMatrixX4(c_frag + 2 * 16 * (k + 1), c1);
        if constexpr (Tr::kCInRegisters) {
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            c_kept[k][r] = c0[r];
            c_kept[k + 1][r] = c1[r];
          }
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          if (u < units) {
            uint32_t b[4];  // keys of unit u; state columns 16k .. 16k + 31
            LdMatrixX4(b_frag + 2 * (8 * u * Tr::kBCPitch + 16 * k), b);
            MmaBf16(cb[u], c0, b[0], b[1]);
            MmaBf16(cb[u], c1, b[2], b[3]);
          }
        }
      }
    }

    // 3. M[t][s] = CB[t][s]·exp(cum_t - cum_s)·dt_s for s <= t, as bf16.
    {
      const float q_lo = cum2[t_lo], q_hi = cum2[t_hi];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        if (u < units) {
          const int s0 = 8 * (j0 + u) + frag_col;
          const float qs0 = cum2[s0], qs1 = cum2[s0 + 1];
          const float dt0 = st.dt[s0], dt1 = st.dt[s0 + 1];
          const float m00 = s0 <= t_lo ? cb[u][0] * Exp2(q_lo - qs0) * dt0 : 0.0f;
          const float m01 = s0 + 1 <= t_lo ? cb[u][1] * Exp2(q_lo - qs1) * dt1 : 0.0f;
          const float m10 = s0 <= t_hi ? cb[u][2] * Exp2(q_hi - qs0) * dt0 : 0.0f;
          const float m11 = s0 + 1 <= t_hi ? cb[u][3] * Exp2(q_hi - qs1) * dt1 : 0.0f;
          *reinterpret_cast<uint32_t*>(m_tile + t_lo * Tr::kMPitch + s0) = PackBf16(m00, m01);
          *reinterpret_cast<uint32_t*>(m_tile + t_hi * Tr::kMPitch + s0) = PackBf16(m10, m11);
        }
      }
      PairBarrier(row_tile);  // the row tile's M, written by warps w and 7 - w
    }

    // 4. y = exp(cum_t)·(C·h_inᵀ) + M·X + D·x over rows t_lo, t_hi and kP / 2 columns.
    float y[Tr::kYTiles][4];
#pragma unroll
    for (int q = 0; q < Tr::kYTiles; ++q) y[q][0] = y[q][1] = y[q][2] = y[q][3] = 0.0f;
    if (!state_is_zero) {
      const uint32_t h_frag =
          SharedAddress(h_copy(chunk)) +
          2 * ((out_col0 + lane % 8 + (lane / 16) * 8) * Tr::kHPitch + ((lane / 8) % 2) * 8);
#pragma unroll
      for (int k = 0; k < Tr::kKSteps; ++k) {
        uint32_t c_op[4];
        if constexpr (Tr::kCInRegisters) {
#pragma unroll
          for (int r = 0; r < 4; ++r) c_op[r] = c_kept[k][r];
        } else {
          LdMatrixX4(c_frag + 2 * 16 * k, c_op);
        }
#pragma unroll
        for (int q = 0; q < Tr::kYTiles; q += 2) {
          uint32_t b[4];  // h rows (columns of y) out_col0 + 8q .. + 15, state columns 16k ..
          LdMatrixX4(h_frag + 2 * (8 * q * Tr::kHPitch + 16 * k), b);
          MmaBf16(y[q], c_op, b[0], b[1]);
          MmaBf16(y[q + 1], c_op, b[2], b[3]);
        }
      }
      const float e_lo = decay_in[t_lo], e_hi = decay_in[t_hi];
#pragma unroll
      for (int q = 0; q < Tr::kYTiles; ++q) {
        y[q][0] *= e_lo;
        y[q][1] *= e_lo;
        y[q][2] *= e_hi;
        y[q][3] *= e_hi;
      }
    }
    {
      const uint32_t m_frag = SharedAddress(m_tile) +
                              2 * ((16 * row_tile + lane % 16) * Tr::kMPitch + (lane / 16) * 8);
      const uint32_t x_frag =
          SharedAddress(st.x) + 2 * ((lane % 16) * Tr::kXPitch + out_col0 + (lane / 16) * 8);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        if (k <= row_tile) {
          uint32_t m_op[4];
          LdMatrixX4(m_frag + 2 * 16 * k, m_op);
#pragma unroll
          for (int q = 0; q < Tr::kYTiles; q += 2) {
            uint32_t b[4];  // x rows (keys) 16k .. 16k + 15, columns out_col0 + 8q ..
            LdMatrixX4Trans(x_frag + 2 * (16 * k * Tr::kXPitch + 8 * q), b);
            MmaBf16(y[q], m_op, b[0], b[1]);
            MmaBf16(y[q + 1], m_op, b[2], b[3]);
          }
        }
      }
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int t = half == 0 ? t_lo : t_hi;
      if (t < len) {
        float* y_row = a.y + (t0 + t) * y_stride + head * P + p0;
#pragma unroll
        for (int q = 0; q < Tr::kYTiles; ++q) {
          const int p = out_col0 + 8 * q + frag_col;
          const float2 xv =
              UnpackBf16(*reinterpret_cast<const uint32_t*>(st.x + t * Tr::kXPitch + p));
          const float v0 = y[q][2 * half] + skip * xv.x;
          const float v1 = y[q][2 * half + 1] + skip * xv.y;
          if (a.y_vec && a.full_cols) {
            *reinterpret_cast<float2*>(y_row + p) = make_float2(v0, v1);
          } else {
            if (p0 + p < P) y_row[p] = v0;
            if (p0 + p + 1 < P) y_row[p + 1] = v1;
          }
        }
      }
    }

    // 5. h = exp(cum_last)·h + Σ_s (w_s·x_s) ⊗ B_s, A operand (X∘w)ᵀ by transposed loads.
    {
      const float chunk_decay = Exp2(total2);
#pragma unroll
      for (int mi = 0; mi < Tr::kStateM; ++mi) {
#pragma unroll
        for (int nt = 0; nt < Tr::kStateTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) state[mi][nt][e] *= chunk_decay;
        }
      }
      const uint32_t xt_frag =
          SharedAddress(st.x) +
          2 * ((lane % 8 + (lane / 16) * 8) * Tr::kXPitch + state_p0 + ((lane / 8) % 2) * 8);
      const uint32_t bt_frag =
          SharedAddress(st.b) + 2 * ((lane % 16) * Tr::kBCPitch + state_n0 + (lane / 16) * 8);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int s = 16 * k + frag_col;
        const float w0 = weight[s], w1 = weight[s + 1], w8 = weight[s + 8], w9 = weight[s + 9];
        uint32_t xw[Tr::kStateM][4];  // rows p: state_p0 + 16 mi ..; keys 16k .. 16k + 15
#pragma unroll
        for (int mi = 0; mi < Tr::kStateM; ++mi) {
          LdMatrixX4Trans(xt_frag + 2 * (16 * k * Tr::kXPitch + 16 * mi), xw[mi]);
          xw[mi][0] = ScaleBf16(xw[mi][0], w0, w1);
          xw[mi][1] = ScaleBf16(xw[mi][1], w0, w1);
          xw[mi][2] = ScaleBf16(xw[mi][2], w8, w9);
          xw[mi][3] = ScaleBf16(xw[mi][3], w8, w9);
        }
#pragma unroll
        for (int nt = 0; nt < Tr::kStateTiles; nt += 2) {
          uint32_t b[4];  // B rows (keys) 16k .., state columns state_n0 + 8 nt .. + 15
          LdMatrixX4Trans(bt_frag + 2 * (16 * k * Tr::kBCPitch + 8 * nt), b);
#pragma unroll
          for (int mi = 0; mi < Tr::kStateM; ++mi) {
            MmaBf16(state[mi][nt], xw[mi], b[0], b[1]);
            MmaBf16(state[mi][nt + 1], xw[mi], b[2], b[3]);
          }
        }
      }
    }

    // 6. The bf16 copy of h that the next chunk's step 4 reads.
    if (chunk + 1 < chunks) {
      if constexpr (Tr::kHBuffers == 1) __syncthreads();  // step 4 of every warp has read it
      store_state_copy(h_copy(chunk + 1));
    }
    state_is_zero = false;
  }

  if (a.final_state != nullptr) {
    float* h_out = a.final_state + head * P * N;
#pragma unroll
    for (int mi = 0; mi < Tr::kStateM; ++mi) {
#pragma unroll
      for (int nt = 0; nt < Tr::kStateTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t p = p0 + state_p0 + 16 * mi + frag_row + (e >= 2 ? 8 : 0);
          const int64_t n = state_n0 + 8 * nt + frag_col + (e & 1);
          if (p < P && n < N) h_out[p * N + n] = state[mi][nt][e];
        }
      }
    }
  }
  if (a.log_decay != nullptr && p0 == 0 && threadIdx.x == 0) a.log_decay[head] = log_decay;
}

template <class Tr>
cudaError_t LaunchWithTraits(Bf16ScanArgs a, int64_t head_dim, int64_t heads,
                             cudaStream_t stream) {
  a.p_tiles = static_cast<int>((head_dim + Tr::kP - 1) / Tr::kP);
  a.full_cols = head_dim % Tr::kP == 0;
  cudaError_t e = cudaFuncSetAttribute(SsdScanBf16Kernel<Tr>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes);
  if (e == cudaSuccess) {
    e = cudaFuncSetAttribute(SsdScanBf16Kernel<Tr>, cudaFuncAttributePreferredSharedMemoryCarveout,
                             cudaSharedmemCarveoutMaxShared);
  }
  if (e != cudaSuccess) return e;
  const auto blocks = static_cast<unsigned>(heads * a.p_tiles);
  SsdScanBf16Kernel<Tr><<<blocks, Tr::kThreads, Tr::kSmemBytes, stream>>>(a);
  return cudaGetLastError();
}

bool Aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Blocks per head at most (the smaller column tile of the two instantiations).
int64_t HeadDimTiles(int64_t head_dim) { return (head_dim + 31) / 32; }

}  // namespace

absl::Status CheckSsdScanBf16Supported(const SsdScanParams& p) {
  if (p.state_size > kSsdBf16MaxStateSize) {
    return absl::UnimplementedError(absl::StrCat("SsdScan (CUDA bf16): state_size must be <= ",
                                                 kSsdBf16MaxStateSize,
                                                 ". Given: ", p.state_size));
  }
  if (p.num_heads * HeadDimTiles(p.head_dim) > INT32_MAX) {
    return absl::UnimplementedError(absl::StrCat(
        "SsdScan (CUDA bf16): num_heads * ceil(head_dim / 32) must be <= ", INT32_MAX,
        ". Given: ", p.num_heads * HeadDimTiles(p.head_dim)));
  }
  return absl::OkStatus();
}

cudaError_t LaunchSsdScanBf16(const SsdScanParams& p, cudaStream_t stream) {
  Bf16ScanArgs a;
  CopyScanOperands(p, a);
  a.head_dim = p.head_dim;
  a.state_size = p.state_size;
  // 16-byte pieces: 8 bf16 that start every row (pointer, stride) and every
  // head's or group's columns (P or N) on a 16-byte boundary.
  a.x_vec = Aligned(a.x, 16) && a.x_stride % 8 == 0 && p.head_dim % 8 == 0;
  a.b_vec = Aligned(a.B, 16) && a.b_stride % 8 == 0 && p.state_size % 8 == 0;
  a.c_vec = Aligned(a.C, 16) && a.c_stride % 8 == 0 && p.state_size % 8 == 0;
  a.y_vec = Aligned(a.y, 8) && p.head_dim % 2 == 0;
  if (p.state_size <= 128) {
    return LaunchWithTraits<SsdBf16Traits<128, 32>>(a, p.head_dim, p.num_heads, stream);
  }
  return LaunchWithTraits<SsdBf16Traits<256, 64>>(a, p.head_dim, p.num_heads, stream);
}

}  // namespace tessera::cuda_ssd
