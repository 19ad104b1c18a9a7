// SsdScan for bf16 x, B, C at head_dim 64 on Hopper: one warpgroup per head
// walks the whole sequence in chunks of 64 tokens with warpgroup MMAs (wgmma,
// bf16 operands, fp32 accumulators), the state h (64 × N, fp32) living in the
// accumulator registers of the state product from the first chunk to the last.
//
// Why this shape: every product of a chunk has 64 rows (tokens t, or head_dim
// rows p for the state), exactly one m64 wgmma per warpgroup, so a CTA of one
// warpgroup does a head's chunk in 24 MMA instructions whose operands the
// tensor cores read from shared memory; the mma.sync kernel beside it
// (ssd_scan_bf16.cu) issued ~950 instructions per chunk per warp to do the
// same with ldmatrix fragments. One CTA per head (H 128 fills an H200's 132
// multiprocessors once); the traffic is the compulsory one: x, B, C, dt in,
// y and the final state out, the state never leaving the multiprocessor.
//
// Per chunk c (tokens t, s in [0, 64), cum = the chunk's cumsum of dt·A):
//   CB    = C·Bᵀ                  SS: A = C, B = B, both K-major (K = n)
//   Y     = C·h_cᵀ                SS: A = C, B = h_c as bf16 in shared memory
//   M     = CB ∘ exp(cum_t − cum_s)·dt_s for s <= t, else 0, turned into bf16
//           A fragments in registers (the accumulator layout is the A layout)
//   Y     = exp(cum_t)·Y + M·X    RS: B = x, N-major (transposed by the MMA)
//   h     = exp(cum_last)·h + (X ∘ w)ᵀ·B,  w_s = exp(cum_last − cum_s)·dt_s
//                                 RS: A = (X ∘ w)ᵀ by ldmatrix.trans, scaled
//                                 in registers; B = B, N-major
//   y     = Y + D·x to global memory straight from the accumulators
//   h_c+1 as bf16 into shared memory for the next chunk's Y
// C·Bᵀ and C·h_cᵀ run while every warp scans dt of the chunk (a warp does the
// whole 64-token scan itself, no barrier); the state product runs while the
// warps store y. One CTA barrier per chunk. x, B, C of the next chunks arrive
// by cp.async (3 buffers, 2 chunks ahead) in the 128-byte-swizzled layout the
// wgmma descriptors name (flash_attention_ptx.cuh: 16-byte piece c of row r
// at piece c ^ (r % 8), tiles on 1024-byte boundaries), dt by plain loads 2
// chunks ahead. Tokens past L arrive as zeros (x, B, C) and dt 0, so they add
// nothing to h and decay nothing; their y rows are not stored.
//
// Rounding beyond the bf16 inputs, as in the mma.sync kernel: M, X ∘ w and the
// copy of h that Y reads are bf16 operands; sums, decays, y and h are fp32.
//
// Speed (H200, nemotronh-8b layer, bench/ssd_bench.cc + ssd_peer.py, one run):
// 0.156 / 0.596 / 2.35 ms at 4K / 16K / 64K tokens, 3.95 / 2.33 / 2.17x
// mamba_ssm's Triton kernel and 1.7x the mma.sync kernel; ~1.5 TB/s of the
// compulsory 3.5 GB at 64K, so not yet at the memory floor. A chunk takes
// ~2.3 µs (~4000 cycles) for ~1400 SASS instructions per warp, one warp per
// scheduler: latency-bound. Issuing the copies under C·Bᵀ and exponentiating
// only the diagonal blocks of M cut instructions but measured 2.5% slower, so
// the stall is elsewhere. Leads, untested: the fence.proxy.async before the
// end-of-chunk barrier is MEMBAR.ALL.CTA in SASS, which may wait for this
// thread's y stores and in-flight cp.async (copies by TMA, as flash attention
// does, and y stored after the barrier would show it); past that, more than
// one chain per multiprocessor (a sequence split with a state pre-pass).
#include "kernels/cuda/ssd_scan_sm90.cuh"

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/flash_attention_ptx.cuh"
#include "kernels/cuda/sm80_ptx.cuh"
#include "kernels/cuda/sm90_ptx.cuh"
#include "kernels/cuda/ssd_bf16_ops.cuh"

namespace tessera::cuda_ssd {
namespace {

using cuda_flash::WgmmaRS;
using cuda_sm80::CpAsync16;
using cuda_sm80::CpAsyncCommit;
using cuda_sm80::CpAsyncWait;
using cuda_sm80::LdMatrixX4Trans;
using cuda_sm90::FenceRegisters;
using cuda_sm90::MatrixDescriptor;
using cuda_sm90::SmemAddress;
using cuda_sm90::WgmmaCommit;
using cuda_sm90::WgmmaFence;
using cuda_sm90::WgmmaWait;

template <int kStateSize>
struct Sm90ScanTraits {
  static constexpr int kT = 64;        // tokens per chunk: the wgmma M of the chunk's products
  static constexpr int kP = 64;        // head_dim: one 128-byte row of bf16
  static constexpr int kN = kStateSize;
  static constexpr int kPanels = kN / 64;  // 64-column swizzled panels of a B, C or h row
  static constexpr int kThreads = 128;     // one warpgroup
  static constexpr int kStages = 3;        // x, B, C buffers: 2 chunks in flight
  static constexpr int kPanelBytes = 64 * 128;  // 64 rows of 128 bytes
  static constexpr int kXBytes = kPanelBytes;   // x: (64 tokens, 64 p)
  static constexpr int kBCBytes = kPanels * kPanelBytes;  // B or C: (64 tokens, N)
  static constexpr int kStageBytes = kXBytes + 2 * kBCBytes;
  static constexpr int kHBytes = kPanels * kPanelBytes;   // h: (64 p, N) bf16
  static constexpr int kHOffset = kStages * kStageBytes;  // 2 buffers of h
  static constexpr int kScanOffset = kHOffset + 2 * kHBytes;
  // Per warp: (q_s, q_s+1, dt_s, dt_s+1) and (w_s, w_s+1) and (e_s, e_s+1) per token pair.
  static constexpr int kScanBytes = 32 * (16 + 8 + 8);
  static constexpr int kSmemBytes = 1024 + kScanOffset + 4 * kScanBytes;  // + 1024 for alignment
  static constexpr int kKSteps = kN / 16;   // k16 steps over the state (C·Bᵀ, C·hᵀ)
  static constexpr int kStateRegs = kN / 2;  // h per thread: 64 × N / 128
  static_assert(kN == 64 || kN == 128, "WgmmaRS is generated for N = 64 and 128");
  static_assert(kSmemBytes <= 227 * 1024, "over Hopper's opt-in shared memory per block");
};

// The scan with every stride resolved.
struct Sm90ScanArgs {
  int64_t seq_len, heads, heads_per_group;
  int64_t x_stride, dt_stride, b_stride, c_stride;  // elements
  const __nv_bfloat16* x;      // (L, H, 64)
  const float* dt;             // (L, H)
  const float* A;              // (H)
  const __nv_bfloat16* B;      // (L, G, N)
  const __nv_bfloat16* C;      // (L, G, N)
  const float* D;              // (H) or null
  const float* initial_state;  // (H, 64, N) or null
  float* y;                    // (L, H, 64)
  float* final_state;          // (H, 64, N) or null
  float* log_decay;            // (H) or null
};

// A K-major operand in 128-byte-swizzled rows: 8-row atoms 1024 bytes apart.
__device__ __forceinline__ uint64_t KMajor(uint32_t address) {
  return MatrixDescriptor(address, 16, 1024);
}
// An N-major operand (rows of K): 64-column panels `panel_bytes` apart.
__device__ __forceinline__ uint64_t NMajor(uint32_t address, uint32_t panel_bytes) {
  return MatrixDescriptor(address, panel_bytes, 1024);
}

// D (64×64, fp32) {+}= A (64×16, bf16, shared, K-major) · B (64×16, bf16, shared, K-major)ᵀ.
__device__ __forceinline__ void WgmmaSS64(float (&d)[32], uint64_t desc_a, uint64_t desc_b,
                                          int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, "
      "%32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
        "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
        "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),
        "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
        "+f"(d[30]), "+f"(d[31])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// Orders this thread's shared-memory writes (st.shared, cp.async) before the
// tensor cores' reads that follow a barrier.
__device__ __forceinline__ void FenceProxyAsync() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// Thread (warp w, lane 4g + t) holds accumulator register 4j + e of an m64
// product at row 16w + g + 8·(e / 2), column 8j + 2t + (e % 2).
template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, 1) SsdScanSm90Kernel(const Sm90ScanArgs a) {
  constexpr int kT = Tr::kT;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024 - (SmemAddress(smem_raw) & 1023)) & 1023);
  const uint32_t base = SmemAddress(smem);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int row_lo = 16 * warp + g;  // this thread's accumulator rows row_lo, row_lo + 8
  const int64_t head = blockIdx.x;
  const int64_t group = head / a.heads_per_group;
  const int64_t L = a.seq_len;
  const int64_t chunks = (L + kT - 1) / kT;

  // Copies: thread i moves 16-byte piece i % 8 of rows i / 8 + 16k (k < 4) of
  // every 128-byte panel; rows 16k apart share the swizzle (r % 8).
  const int piece = threadIdx.x % 8, copy_row = threadIdx.x / 8;
  const uint32_t copy_offset = copy_row * 128 + ((piece ^ (copy_row % 8)) * 16);
  const __nv_bfloat16* x_src = a.x + head * Tr::kP + piece * 8;
  const __nv_bfloat16* b_src = a.B + group * Tr::kN + piece * 8;
  const __nv_bfloat16* c_src = a.C + group * Tr::kN + piece * 8;
  auto load_chunk = [&](int64_t chunk) {
    const uint32_t stage = base + static_cast<uint32_t>(chunk % Tr::kStages) * Tr::kStageBytes;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t token = chunk * kT + copy_row + 16 * k;
      const bool valid = token < L;
      const uint32_t dst = stage + copy_offset + 16 * k * 128;
      CpAsync16(dst, valid ? x_src + token * a.x_stride : a.x, valid);
#pragma unroll
      for (int panel = 0; panel < Tr::kPanels; ++panel) {
        CpAsync16(dst + Tr::kXBytes + panel * Tr::kPanelBytes,
                  valid ? b_src + token * a.b_stride + 64 * panel : a.B, valid);
        CpAsync16(dst + Tr::kXBytes + Tr::kBCBytes + panel * Tr::kPanelBytes,
                  valid ? c_src + token * a.c_stride + 64 * panel : a.C, valid);
      }
    }
  };
  // dt of tokens 2·lane and 2·lane + 1 of `chunk` (0 past L): every warp scans the whole chunk.
  auto load_dt = [&](int64_t chunk) {
    const int64_t token = chunk * kT + 2 * lane;
    return make_float2(token < L ? a.dt[token * a.dt_stride + head] : 0.0f,
                       token + 1 < L ? a.dt[(token + 1) * a.dt_stride + head] : 0.0f);
  };

  // The warp's scan results, per token pair l = s / 2.
  uint8_t* scan = smem + Tr::kScanOffset + warp * Tr::kScanBytes;
  float4* q_dt = reinterpret_cast<float4*>(scan);         // (q_2l, q_2l+1, dt_2l, dt_2l+1)
  float2* weight = reinterpret_cast<float2*>(scan + 512);  // w_2l, w_2l+1
  float2* decay_in = reinterpret_cast<float2*>(scan + 768);  // exp(cum_2l), exp(cum_2l+1)
  const float* q_of = reinterpret_cast<const float*>(q_dt);  // q_s at (s / 2) * 4 + s % 2
  const float* e_of = reinterpret_cast<const float*>(decay_in);

  // h[p][n], p = row, n = column of the state accumulators.
  float state[Tr::kStateRegs];
  const float* h_in = a.initial_state == nullptr ? nullptr : a.initial_state + head * Tr::kP * Tr::kN;
#pragma unroll
  for (int j = 0; j < Tr::kN / 8; ++j) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int p = row_lo + 8 * half, n = 8 * j + 2 * t;
      const float2 v = h_in == nullptr ? make_float2(0.0f, 0.0f)
                                       : *reinterpret_cast<const float2*>(h_in + p * Tr::kN + n);
      state[4 * j + 2 * half] = v.x;
      state[4 * j + 2 * half + 1] = v.y;
    }
  }
  // h as bf16 into buffer `buffer` (K-major for C·hᵀ: row p, panel n / 64; p % 8 == g).
  auto store_state_copy = [&](int buffer) {
    uint8_t* dst = smem + Tr::kHOffset + buffer * Tr::kHBytes;
#pragma unroll
    for (int j = 0; j < Tr::kN / 8; ++j) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int p = row_lo + 8 * half;
        *reinterpret_cast<uint32_t*>(dst + (j / 8) * Tr::kPanelBytes + p * 128 +
                                     (((j % 8) ^ g) * 16) + 4 * t) =
            PackBf16(state[4 * j + 2 * half], state[4 * j + 2 * half + 1]);
      }
    }
  };
  store_state_copy(0);  // zeros without an initial state: C·h_0ᵀ is then 0

  for (int s = 0; s < Tr::kStages; ++s) {
    if (s < chunks) load_chunk(s);
    CpAsyncCommit();
  }
  float2 dt_now = chunks > 0 ? load_dt(0) : make_float2(0.0f, 0.0f);
  float2 dt_next = chunks > 1 ? load_dt(1) : make_float2(0.0f, 0.0f);
  CpAsyncWait<Tr::kStages - 1>();  // chunk 0
  FenceProxyAsync();
  __syncthreads();

  const float a_head = a.A[head];
  const float skip = a.D == nullptr ? 0.0f : a.D[head];
  const int64_t y_stride = a.heads * Tr::kP;
  float log_decay = 0.0f;
  constexpr float kLog2e = 1.4426950408889634f;
  float cb[32], y[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) cb[i] = y[i] = 0.0f;
  uint32_t m_frag[4][4], xw_frag[4][4];

  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int stage_index = static_cast<int>(chunk % Tr::kStages);
    const uint32_t x_tile = base + stage_index * Tr::kStageBytes;
    const uint32_t b_tile = x_tile + Tr::kXBytes;
    const uint32_t c_tile = b_tile + Tr::kBCBytes;
    const uint32_t h_tile = base + Tr::kHOffset + static_cast<int>(chunk % 2) * Tr::kHBytes;
    const float2 dt_later = chunk + 2 < chunks ? load_dt(chunk + 2) : make_float2(0.0f, 0.0f);

    // CB = C·Bᵀ and Y = C·h_cᵀ, in flight while the warps scan dt.
    FenceRegisters(cb);
    FenceRegisters(y);
    WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < Tr::kKSteps; ++kk) {
      const uint32_t k_bytes = (kk / 4) * Tr::kPanelBytes + (kk % 4) * 32;
      WgmmaSS64(cb, KMajor(c_tile + k_bytes), KMajor(b_tile + k_bytes), kk > 0 ? 1 : 0);
    }
    WgmmaCommit();
#pragma unroll
    for (int kk = 0; kk < Tr::kKSteps; ++kk) {
      const uint32_t k_bytes = (kk / 4) * Tr::kPanelBytes + (kk % 4) * 32;
      WgmmaSS64(y, KMajor(c_tile + k_bytes), KMajor(h_tile + k_bytes), kk > 0 ? 1 : 0);
    }
    WgmmaCommit();

    // cum within the chunk (log2 units: q = cum·log2 e); lane l has tokens 2l, 2l + 1.
    float chunk_decay;
    {
      const ChunkCumsum cum = WarpChunkCumsum(dt_now.x * a_head, dt_now.y * a_head, lane);
      log_decay += cum.total;
      const float total2 = cum.total * kLog2e;
      chunk_decay = Exp2(total2);
      const float q0 = cum.cum0 * kLog2e, q1 = cum.cum1 * kLog2e;
      q_dt[lane] = make_float4(q0, q1, dt_now.x, dt_now.y);
      weight[lane] = make_float2(Exp2(total2 - q0) * dt_now.x, Exp2(total2 - q1) * dt_now.y);
      decay_in[lane] = make_float2(Exp2(q0), Exp2(q1));
      __syncwarp();
    }

    // The state product's A operand while Y runs: (X ∘ w)ᵀ as fragments
    // (rows p = 16·warp.., keys 16kk..) by transposed loads.
    {
      const int s_row = lane % 8 + 8 * (lane / 16);
      const int p_piece = 2 * warp + (lane / 8) % 2;
      const uint32_t xt = x_tile + s_row * 128 + ((p_piece ^ (s_row % 8)) * 16);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        LdMatrixX4Trans(xt + kk * 16 * 128, xw_frag[kk]);
        const float2 w_a = weight[8 * kk + t];      // keys 16kk + 2t, + 1
        const float2 w_b = weight[8 * kk + t + 4];  // keys 16kk + 2t + 8, + 9
        xw_frag[kk][0] = ScaleBf16(xw_frag[kk][0], w_a.x, w_a.y);
        xw_frag[kk][1] = ScaleBf16(xw_frag[kk][1], w_a.x, w_a.y);
        xw_frag[kk][2] = ScaleBf16(xw_frag[kk][2], w_b.x, w_b.y);
        xw_frag[kk][3] = ScaleBf16(xw_frag[kk][3], w_b.x, w_b.y);
      }
    }

    // M = CB ∘ exp(cum_t − cum_s)·dt_s (s <= t) as bf16 A fragments; the
    // warp's rows stop at 16·warp + 15, so column blocks past it are zero.
    WgmmaWait<1>();
    FenceRegisters(cb);
    {
      const int row_hi = row_lo + 8;
      const float q_lo = q_of[(row_lo / 2) * 4 + row_lo % 2];
      const float q_hi = q_of[(row_hi / 2) * 4 + row_hi % 2];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        float m[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (8 * j <= 16 * warp + 15) {
          const float4 v = q_dt[4 * j + t];  // keys s0 = 8j + 2t and s0 + 1
          const int s0 = 8 * j + 2 * t;
          m[0] = s0 <= row_lo ? cb[4 * j] * Exp2(q_lo - v.x) * v.z : 0.0f;
          m[1] = s0 + 1 <= row_lo ? cb[4 * j + 1] * Exp2(q_lo - v.y) * v.w : 0.0f;
          m[2] = s0 <= row_hi ? cb[4 * j + 2] * Exp2(q_hi - v.x) * v.z : 0.0f;
          m[3] = s0 + 1 <= row_hi ? cb[4 * j + 3] * Exp2(q_hi - v.y) * v.w : 0.0f;
        }
        // Columns 8j.. are k-step j / 2, registers 0-1 (j even) or 2-3 (j odd) by row half.
        m_frag[j / 2][2 * (j % 2)] = PackBf16(m[0], m[1]);
        m_frag[j / 2][2 * (j % 2) + 1] = PackBf16(m[2], m[3]);
      }
    }

    // Y = exp(cum_t)·C·h_cᵀ and h decayed over the chunk, then Y += M·X and
    // h += (X ∘ w)ᵀ·B on the tensor cores. (The state is scaled only with no
    // product in flight: ptxas would otherwise wait for all of them first.)
    WgmmaWait<0>();
    FenceRegisters(y);
    FenceRegisters(state);
#pragma unroll
    for (int i = 0; i < Tr::kStateRegs; ++i) state[i] *= chunk_decay;
    {
      const float e_lo = e_of[row_lo], e_hi = e_of[row_lo + 8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        y[4 * j] *= e_lo;
        y[4 * j + 1] *= e_lo;
        y[4 * j + 2] *= e_hi;
        y[4 * j + 3] *= e_hi;
      }
    }
    FenceRegisters(y);
    FenceRegisters(state);
    cuda_flash::FenceRegisters(m_frag);
    cuda_flash::FenceRegisters(xw_frag);
    WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) WgmmaRS(y, m_frag[kk], NMajor(x_tile + kk * 2048, Tr::kPanelBytes));
    WgmmaCommit();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      WgmmaRS(state, xw_frag[kk], NMajor(b_tile + kk * 2048, Tr::kPanelBytes));
    }
    WgmmaCommit();

    // y = Y + D·x for the chunk's tokens, while the state product runs.
    WgmmaWait<1>();
    FenceRegisters(y);
    cuda_flash::FenceRegisters(m_frag);
    {
      const int64_t t0 = chunk * kT;
      const int len = static_cast<int>(L - t0 < kT ? L - t0 : kT);
      const uint8_t* x_rows = smem + stage_index * Tr::kStageBytes;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int r = row_lo + 8 * half;  // r % 8 == g
        if (r < len) {
          float* y_row = a.y + (t0 + r) * y_stride + head * Tr::kP + 2 * t;
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const float2 xv =
                UnpackBf16(*reinterpret_cast<const uint32_t*>(x_rows + r * 128 + ((j ^ g) * 16) + 4 * t));
            *reinterpret_cast<float2*>(y_row + 8 * j) =
                make_float2(y[4 * j + 2 * half] + skip * xv.x, y[4 * j + 2 * half + 1] + skip * xv.y);
          }
        }
      }
    }

    WgmmaWait<0>();
    FenceRegisters(state);
    cuda_flash::FenceRegisters(xw_frag);
    if (chunk + 1 < chunks) store_state_copy(static_cast<int>((chunk + 1) % 2));
    dt_now = dt_next;
    dt_next = dt_later;
    // Chunk + 1's copies and h_c+1 visible to the tensor cores; every read of
    // this chunk's buffer done before it is refilled with chunk + 3.
    CpAsyncWait<Tr::kStages - 2>();
    FenceProxyAsync();
    __syncthreads();
    if (chunk + Tr::kStages < chunks) load_chunk(chunk + Tr::kStages);
    CpAsyncCommit();
  }
  CpAsyncWait<0>();

  if (a.final_state != nullptr) {
    float* h_out = a.final_state + head * Tr::kP * Tr::kN;
#pragma unroll
    for (int j = 0; j < Tr::kN / 8; ++j) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int p = row_lo + 8 * half, n = 8 * j + 2 * t;
        *reinterpret_cast<float2*>(h_out + p * Tr::kN + n) =
            make_float2(state[4 * j + 2 * half], state[4 * j + 2 * half + 1]);
      }
    }
  }
  if (a.log_decay != nullptr && threadIdx.x == 0) a.log_decay[head] = log_decay;
}

template <int kStateSize>
cudaError_t Launch(const Sm90ScanArgs& a, cudaStream_t stream) {
  using Tr = Sm90ScanTraits<kStateSize>;
  const auto kernel = SsdScanSm90Kernel<Tr>;
  const cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes);
  if (e != cudaSuccess) return e;
  kernel<<<static_cast<unsigned>(a.heads), Tr::kThreads, Tr::kSmemBytes, stream>>>(a);
  return cudaGetLastError();
}

bool Aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

int64_t Stride(int64_t given, int64_t packed) { return given == 0 ? packed : given; }

}  // namespace

bool SsdScanSm90Supports(const SsdScanParams& p) {
  const int64_t gn = p.num_groups * p.state_size;
  return p.type == ElementType::kBF16 && p.head_dim == 64 &&
         (p.state_size == 64 || p.state_size == 128) && p.num_heads <= INT32_MAX &&
         Stride(p.x_stride, p.num_heads * p.head_dim) % 8 == 0 && Stride(p.b_stride, gn) % 8 == 0 &&
         Stride(p.c_stride, gn) % 8 == 0 && Aligned(p.x, 16) && Aligned(p.B, 16) &&
         Aligned(p.C, 16) && Aligned(p.y, 8) &&
         (p.initial_state == nullptr || Aligned(p.initial_state, 8)) &&
         (p.final_state == nullptr || Aligned(p.final_state, 8));
}

cudaError_t LaunchSsdScanSm90(const SsdScanParams& p, cudaStream_t stream) {
  Sm90ScanArgs a;
  CopyScanOperands(p, a);
  if (p.num_heads == 0) return cudaSuccess;
  return p.state_size == 64 ? Launch<64>(a, stream) : Launch<128>(a, stream);
}

}  // namespace tessera::cuda_ssd
