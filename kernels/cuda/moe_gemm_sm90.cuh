// The grouped bf16 product for many rows per expert (prefill): Hopper's
// wgmma fed by TMA. A CTA of three warpgroups runs persistently over the
// tiles of every expert (moe_grouped.cuh's scheduler): warpgroup 0 is the
// producer (one thread issues the bulk tensor copies of B, and of A in the
// down projection; in the up projection all 128 threads copy x's rows of the
// tile's pairs with cp.async, see kGather below; a ring of 5 or 6 stages,
// each guarded by a full and an empty mbarrier), 1 and 2
// the consumers, each multiplying 64 of the tile's 128 rows by its kN = 192
// (or 128) weight rows with wgmma m64nNk16 (fp32 accumulators in registers,
// one group of 4 in flight while the previous stage is released) and running
// the epilogue straight from registers to global memory. 128 × 192 tiles fit
// nemotron-3-nano exactly (I 1856 = 9.7 · 192, H 2688 = 14 · 192) and reuse
// each operand byte 1.2× more than 128 × 128.
//
// Every tile is stored as TMA writes it with CU_TENSOR_MAP_SWIZZLE_128B: rows
// of 64 bf16 (128 bytes), 16-byte chunk c of row r at c ^ (r % 8), 8 rows to
// a 1024-byte atom, tiles on 1024-byte boundaries; a wgmma descriptor then
// says "128-byte swizzle, 1024 bytes from one 8-row atom to the next", and
// the k-th 16-deep slice starts 32·k bytes into the row. A rows are the
// permuted rows of one expert (down: rows past the expert's end belong to
// the next one or lie past P, where TMA reads zeros; up: zeros; the epilogue
// drops them); B comes
// in boxes of 64 consecutive weight rows, or for SwiGLU in a box of kN / 2
// gate rows c0.. and one of the up rows I + c0.. of the same act columns.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/moe_grouped.cuh"
#include "kernels/cuda/sm80_ptx.cuh"
#include "kernels/cuda/sm90_ptx.cuh"

namespace tessera::cuda_moe {

using cuda_sm80::CpAsync16;
using cuda_sm90::FenceRegisters;
using cuda_sm90::MatrixDescriptor;
using cuda_sm90::MbarArrive;
using cuda_sm90::MbarArriveExpectTx;
using cuda_sm90::MbarInit;
using cuda_sm90::MbarInitFence;
using cuda_sm90::SmemAddress;
using cuda_sm90::WgmmaCommit;
using cuda_sm90::WgmmaFence;
using cuda_sm90::WgmmaWait;

template <int kN>
struct Sm90Traits {
  static_assert(kN == 128 || kN == 192, "tiles of 128 or 192 weight rows");
  static constexpr int kRows = 128;     // M per tile: 2 consumer warpgroups × 64
  static constexpr int kCols = kN;      // weight rows per tile (wgmma N)
  static constexpr int kDepth = 64;     // K per stage: one 128-byte swizzled row
  static constexpr int kStages = kN == 128 ? 6 : 5;
  static constexpr int kThreads = 384;  // producer warpgroup, then 2 consumer warpgroups
  static constexpr int kABytes = kRows * kDepth * 2;  // 16 KB
  static constexpr int kBBytes = kCols * kDepth * 2;  // 16 or 24 KB
  static constexpr int kStageBytes = kABytes + kBBytes;
  static constexpr int kConsumerWarps = 8;
  static constexpr int kAccumulators = kN / 2;  // per consumer thread
  // 1024 for aligning the ring, the ring, 2 barriers per stage, the expert tables.
  static constexpr int SharedBytes(int experts) {
    return 1024 + kStages * kStageBytes + 2 * kStages * 8 + 2 * 4 * (experts + 1);
  }
  // Rows of one B box: 64 (kN / 64 boxes of consecutive weight rows), or for
  // SwiGLU kN / 2 (a gate box and an up box of the same act columns).
  template <Epilogue kEpi>
  static constexpr int BoxRows() {
    return kEpi == Epilogue::kSwiGlu ? kN / 2 : 64;
  }
  template <Epilogue kEpi>
  static constexpr int OutCols() {
    return kEpi == Epilogue::kSwiGlu ? kN / 2 : kN;
  }
};

__device__ __forceinline__ uint64_t GlobalTimerNs() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Returns once the phase of parity `parity` has completed. A wait past 10 s
// can only be a broken pipeline: it traps (a launch error) rather than hang.
__device__ __forceinline__ void MbarWait(uint32_t bar, uint32_t parity) {
  uint64_t since = 0;
  for (uint32_t n = 1;; ++n) {
    uint32_t done;
    asm volatile(
        "{\n.reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
    if (done != 0) return;
    if ((n & 4095) == 0) {
      const uint64_t now = GlobalTimerNs();
      if (since == 0) {
        since = now;
      } else if (now - since > 10'000'000'000ull) {
        __trap();
      }
    }
  }
}

// The box at (c0 = column, c1 = row) of a 2-D tensor map into shared memory,
// completing `bar`'s transaction count; elements out of bounds arrive as zeros.
__device__ __forceinline__ void TmaLoad2d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4}], [%2];" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1)
      : "memory");
}
__device__ __forceinline__ void TmaPrefetch(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// A K-major, 128-byte-swizzled operand: start address, (unused) leading byte
// offset 16, stride byte offset 1024 (8 rows of 128 bytes).
__device__ __forceinline__ uint64_t SwizzledDescriptor(uint32_t address) {
  return MatrixDescriptor(address, 16, 1024);
}

// d (64×N fp32, the warpgroup's fragment: N/2 registers) += A (64×16) · B (N×16)ᵀ,
// both bf16 K-major in shared memory behind 128-byte-swizzled descriptors;
// N = 128 or 192, told apart by the fragment's size.
__device__ __forceinline__ void WgmmaM64K16(float (&d)[64], uint64_t desc_a, uint64_t desc_b) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "n"(1));
}
__device__ __forceinline__ void WgmmaM64K16(float (&d)[96], uint64_t desc_a, uint64_t desc_b) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %98, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, "
      "%96, %97, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
      : "l"(desc_a), "l"(desc_b), "n"(1));
}

// Orders shared memory written through the generic proxy (cp.async) that
// this thread has seen complete (an mbarrier wait) before its async-proxy
// reads (wgmma).
__device__ __forceinline__ void FenceProxyAsyncShared() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// Arrives on `bar` once all of this thread's earlier cp.async copies have
// landed, without raising the barrier's expected count (counted at init).
__device__ __forceinline__ void CpAsyncArriveNoInc(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(bar) : "memory");
}

// kGather (the up projections, GroupedGemm::gather_pairs set): A's rows come
// from x by the pairs' tokens through cp.async from all 128 producer threads
// instead of one TMA box of permuted rows. Thread p copies 16-byte chunk
// p % 8 of tile rows p / 8 + 16 j (j < 8: 8 threads cover a 128-byte row,
// coalesced) into the swizzled slot c ^ (r % 8) that TMA would have used,
// zeros past the expert's rows and past K. A stage's full barrier then takes
// 1 + 128 arrivals: the TMA thread's (with B's bytes) and one per producer
// thread that the hardware makes once that thread's copies have landed
// (cp.async.mbarrier.arrive.noinc); consumers fence the proxies after the wait.
template <Epilogue kEpi, int kN, bool kGather>
__global__ void __launch_bounds__(Sm90Traits<kN>::kThreads, 1)
    MoeGemmSm90Kernel(const __grid_constant__ CUtensorMap a_map, const __grid_constant__ CUtensorMap b_map,
                      GroupedGemm g) {
  using Tr = Sm90Traits<kN>;
  constexpr int kBoxRows = Tr::template BoxRows<kEpi>();
  constexpr int kBoxes = kN / kBoxRows;
  extern __shared__ unsigned char sm90_shared[];
  const uint32_t raw = SmemAddress(sm90_shared);
  unsigned char* ring = sm90_shared + ((1024 - (raw & 1023)) & 1023);  // (stages) A tiles, then (stages) B tiles
  const uint32_t ring_address = SmemAddress(ring);
  auto a_stage = [&](int s) { return ring_address + s * Tr::kABytes; };
  auto b_stage = [&](int s) { return ring_address + Tr::kStages * Tr::kABytes + s * Tr::kBBytes; };
  uint64_t* bars = reinterpret_cast<uint64_t*>(ring + Tr::kStages * Tr::kStageBytes);  // full (stages), empty (stages)
  auto full = [&](int s) { return SmemAddress(bars + s); };
  auto empty = [&](int s) { return SmemAddress(bars + Tr::kStages + s); };
  int32_t* tile_starts = reinterpret_cast<int32_t*>(bars + 2 * Tr::kStages);  // (E + 1)
  int32_t* row_starts = tile_starts + g.experts + 1;                           // (E + 1)
  for (int i = threadIdx.x; i <= g.experts; i += blockDim.x) {
    tile_starts[i] = g.tile_starts[i];
    row_starts[i] = g.row_starts[i];
  }
  if (threadIdx.x == 0) {
    for (int s = 0; s < Tr::kStages; ++s) {
      MbarInit(full(s), kGather ? 1 + 128 : 1);
      MbarInit(empty(s), Tr::kConsumerWarps);
    }
    MbarInitFence();
  }
  __syncthreads();
  const int total = tile_starts[g.experts] * g.n_tiles;
  const int k_blocks = static_cast<int>((g.k + Tr::kDepth - 1) / Tr::kDepth);
  const int warpgroup = threadIdx.x / 128;

  if (warpgroup == 0) {  // producer
    if (!kGather && threadIdx.x != 0) return;
    if (threadIdx.x == 0) {
      if constexpr (!kGather) TmaPrefetch(&a_map);
      TmaPrefetch(&b_map);
    }
    const auto* x = static_cast<const __nv_bfloat16*>(g.a);
    const int chunk = threadIdx.x & 7, row_base = threadIdx.x >> 3;  // kGather: rows row_base + 16 j
    int it = 0;
    for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
      const Tile t = DecodeTile(tile_starts, row_starts, g.experts, g.n_tiles, tile, Tr::kRows);
      // First weight row of each box, in the (E · b_rows) rows of b_map.
      int box_row[kBoxes];
      const int expert_row = t.expert * static_cast<int>(g.b_rows);
#pragma unroll
      for (int i = 0; i < kBoxes; ++i) {
        if constexpr (kEpi == Epilogue::kSwiGlu) {  // gate rows c0.., then up rows I + c0..
          box_row[i] = expert_row + i * static_cast<int>(g.n) + t.n_tile * kBoxRows;
        } else {
          box_row[i] = expert_row + t.n_tile * kN + i * kBoxRows;
        }
      }
      // kGather: this thread's chunk of each of its 8 rows in x; nullptr past the expert's rows.
      const __nv_bfloat16* src[kGather ? 8 : 1];
      if constexpr (kGather) {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int r = row_base + 16 * j;
          src[j] = r < t.rows ? x + SourceRow(g, t.row0 + r) * g.a_stride + chunk * 8 : nullptr;
        }
      }
      for (int kb = 0; kb < k_blocks; ++kb, ++it) {
        const int s = it % Tr::kStages;
        const uint32_t phase = (it / Tr::kStages) & 1;
        MbarWait(empty(s), phase ^ 1);
        if (threadIdx.x == 0) {
          MbarArriveExpectTx(full(s), kGather ? Tr::kBBytes : Tr::kStageBytes);
          if constexpr (!kGather) TmaLoad2d(a_stage(s), &a_map, full(s), kb * Tr::kDepth, t.row0);
#pragma unroll
          for (int i = 0; i < kBoxes; ++i) {
            TmaLoad2d(b_stage(s) + i * kBoxRows * 128, &b_map, full(s), kb * Tr::kDepth, box_row[i]);
          }
        }
        if constexpr (kGather) {
          const bool in_k = kb * Tr::kDepth + chunk * 8 < g.k;  // K % 8 == 0: chunks are whole
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const int r = row_base + 16 * j;
            const bool valid = in_k && src[j] != nullptr;
            CpAsync16(a_stage(s) + r * 128 + ((chunk ^ (r & 7)) << 4), valid ? src[j] + kb * Tr::kDepth : x,
                      valid);
          }
          CpAsyncArriveNoInc(full(s));
        }
      }
    }
    if constexpr (kGather) asm volatile("cp.async.wait_all;" ::: "memory");  // nothing in flight at exit
    return;
  }

  const int consumer = warpgroup - 1;
  const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3;
  int it = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
    const Tile t = DecodeTile(tile_starts, row_starts, g.experts, g.n_tiles, tile, Tr::kRows);
    float acc[Tr::kAccumulators];
#pragma unroll
    for (int i = 0; i < Tr::kAccumulators; ++i) acc[i] = 0.0f;
    int previous = 0;
    for (int kb = 0; kb < k_blocks; ++kb, ++it) {
      const int s = it % Tr::kStages;
      MbarWait(full(s), (it / Tr::kStages) & 1);
      if constexpr (kGather) FenceProxyAsyncShared();
      WgmmaFence();
#pragma unroll
      for (int kk = 0; kk < Tr::kDepth / 16; ++kk) {
        WgmmaM64K16(acc, SwizzledDescriptor(a_stage(s) + consumer * (Tr::kABytes / 2) + kk * 32),
                    SwizzledDescriptor(b_stage(s) + kk * 32));
      }
      WgmmaCommit();
      WgmmaWait<1>();  // the previous stage's products are done: release it
      if (kb > 0 && lane == 0) MbarArrive(empty(previous));
      previous = s;
    }
    WgmmaWait<0>();
    FenceRegisters(acc);
    if (lane == 0) MbarArrive(empty(previous));

    // acc[4i..4i+3]: rows r and r + 8, columns 8i + 2·(lane % 4) and + 1 of the kN.
    const int r = consumer * 64 + warp * 16 + (lane >> 2);
    if constexpr (kEpi == Epilogue::kSwiGlu) {
      constexpr int kHalf = kN / 16;  // 8-column groups of the gate half
#pragma unroll
      for (int i = 0; i < kHalf; ++i) {
        const int col = t.n_tile * (kN / 2) + 8 * i + 2 * (lane & 3);
        StoreTileSwiGlu<__nv_bfloat16>(g, t, r, col, acc[4 * i], acc[4 * i + 1], acc[4 * (i + kHalf)],
                                       acc[4 * (i + kHalf) + 1]);
        StoreTileSwiGlu<__nv_bfloat16>(g, t, r + 8, col, acc[4 * i + 2], acc[4 * i + 3],
                                       acc[4 * (i + kHalf) + 2], acc[4 * (i + kHalf) + 3]);
      }
    } else {
#pragma unroll
      for (int i = 0; i < kN / 8; ++i) {
        const int col = t.n_tile * kN + 8 * i + 2 * (lane & 3);
        StoreTilePair<kEpi, __nv_bfloat16>(g, t, r, col, acc[4 * i], acc[4 * i + 1]);
        StoreTilePair<kEpi, __nv_bfloat16>(g, t, r + 8, col, acc[4 * i + 2], acc[4 * i + 3]);
      }
    }
  }
}

}  // namespace tessera::cuda_moe
