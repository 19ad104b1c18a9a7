// The Hopper (sm_90a) instructions that both wgmma kernels (flash attention,
// the MoE grouped GEMM) are built from, as thin inline-PTX wrappers: shared
// addresses, mbarrier setup and arrivals (transaction-counted, for TMA), the
// 128-byte-swizzled shared-memory matrix descriptor, and the wgmma group
// fences. Each kernel keeps its own mbarrier wait (flash spins; the MoE GEMM
// traps after 10 s, being persistent).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::cuda_sm90 {

__device__ __forceinline__ uint32_t SmemAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ------------------------------------------------------------------ mbarrier

__device__ __forceinline__ void MbarInit(uint32_t bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(arrivals) : "memory");
}

// Makes the initialized barriers visible to the async proxy (TMA) and the CTA.
__device__ __forceinline__ void MbarInitFence() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

__device__ __forceinline__ void MbarArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

// Arrives and announces `bytes` that copies will complete on this phase.
__device__ __forceinline__ void MbarArriveExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes)
               : "memory");
}

// ---------------------------------------------------------------------- wgmma

// Keeps the compiler from moving accesses of `r` across an asynchronous MMA's
// issue or wait (the registers belong to the tensor cores in between).
template <int N>
__device__ __forceinline__ void FenceRegisters(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// Shared-memory matrix descriptor for a 128-byte-swizzled operand.
//   K-major (rows of the M or N dimension, 64 K-elements each): leading byte
//   offset unused (16 by convention), stride byte offset 1024 (from one 8-row
//   atom to the next).
//   N-major (rows of the K dimension, 64 N-elements each): leading byte offset
//   = from one 64-column panel to the next, stride byte offset 1024 (from one
//   8-row group of K to the next).
__device__ __forceinline__ uint64_t MatrixDescriptor(uint32_t smem_address, uint32_t leading_bytes,
                                                     uint32_t stride_bytes) {
  return static_cast<uint64_t>((smem_address & 0x3FFFF) >> 4) |
         (static_cast<uint64_t>((leading_bytes >> 4) & 0x3FFF) << 16) |
         (static_cast<uint64_t>((stride_bytes >> 4) & 0x3FFF) << 32) |
         (uint64_t{1} << 62);  // 128-byte swizzle
}

__device__ __forceinline__ void WgmmaFence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void WgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
// Waits until at most kPending committed groups are still running.
template <int kPending>
__device__ __forceinline__ void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}

}  // namespace tessera::cuda_sm90
