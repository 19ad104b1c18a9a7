// The Mamba-2 state-space scan (SSD), chunked, over a whole sequence or a shard.
//
// Per head h (group g = h / (H/G)), with scalar A_h < 0 and state h_t ∈ R^{P×N}:
//   a_t = exp(dt_t · A_h)
//   h_t = a_t · h_{t-1} + dt_t · x_t ⊗ B_t
//   y_t = h_t · C_t + D_h · x_t
//
// SsdScan walks chunks of `chunk_size` tokens (the last may be shorter): the
// intra-chunk output as (L ∘ C Bᵀ) X, the inter-chunk state carried forward, and
// each chunk's output from its true initial state, all as small matrix products.
//
// Context parallelism splits the same decomposition one level up (DESIGN.md):
// a worker runs SsdScan from a zero state to get its summary (S = final_state,
// log Λ = log_decay), the workers all-gather summaries, each composes its true
// initial state h_in, and SsdAddInitialState adds h_in's contribution:
//   y_t += exp(Σ_{τ≤t} dt_τ·A) · (h_in · C_t),   final += Λ · h_in.
// SsdScan(h_in) == SsdScan(0) followed by SsdAddInitialState(h_in), exactly in math.
//
// x, B and C share one storage type (`type`): fp32, or bf16 widened to fp32 as
// it is read. dt, A, D, the states, log_decay and y are fp32 whatever the type,
// and so are the cumulative sums, decays and accumulation. The CPU reference
// takes fp32 only (UNIMPLEMENTED for bf16). CUDA runs fp32 on CUDA cores in
// chunks of `chunk_size`; bf16 runs on tensor cores (bf16 products, fp32
// accumulation and state) in chunks of its own length (64 tokens), which the
// result does not depend on except by rounding, for state_size <= 256.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct SsdScanParams {
  int64_t seq_len = 0;      // L (may be 0)
  int64_t num_heads = 0;    // H
  int64_t head_dim = 0;     // P
  int64_t num_groups = 0;   // G, divides H
  int64_t state_size = 0;   // N
  int64_t chunk_size = 0;   // Q >= 1 (from the model config)
  const void* x = nullptr;    // (L, H, P) of `type`, token stride x_stride
  int64_t x_stride = 0;       // elements; 0 means H·P
  const float* dt = nullptr;  // (L, H) after DtSoftplus, token stride dt_stride
  int64_t dt_stride = 0;      // 0 means H
  const float* A = nullptr;   // (H), A = -exp(A_log)
  const void* B = nullptr;    // (L, G, N) of `type`, token stride b_stride
  int64_t b_stride = 0;       // elements; 0 means G·N
  const void* C = nullptr;    // (L, G, N) of `type`, token stride c_stride
  int64_t c_stride = 0;       // elements; 0 means G·N
  const float* D = nullptr;   // (H) or null (no skip term)
  const float* initial_state = nullptr;  // (H, P, N) or null for zeros
  float* y = nullptr;            // (L, H, P) contiguous
  float* final_state = nullptr;  // (H, P, N) or null; may alias initial_state
  float* log_decay = nullptr;    // (H): Σ_t dt_t·A_h over the sequence, or null
  // Last, so that brace-initialized params written before it keep their meaning.
  ElementType type = ElementType::kF32;  // of x, B, C
};

struct SsdAddInitialStateParams {
  int64_t seq_len = 0;     // L (may be 0)
  int64_t num_heads = 0;   // H
  int64_t head_dim = 0;    // P
  int64_t num_groups = 0;  // G, divides H
  int64_t state_size = 0;  // N
  const float* dt = nullptr;  // (L, H), token stride dt_stride
  int64_t dt_stride = 0;      // 0 means H
  const float* A = nullptr;   // (H)
  const float* C = nullptr;   // (L, G, N), token stride c_stride
  int64_t c_stride = 0;       // 0 means G·N
  const float* initial_state = nullptr;  // (H, P, N): h_in
  float* y = nullptr;            // (L, H, P): y += exp(cumsum dA)_t · (h_in · C_t)
  float* final_state = nullptr;  // (H, P, N) or null: final += exp(Σ dt·A) · h_in
};

// The contract's checks (kernels/ssd_scan.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckSsdScanParams(const SsdScanParams& p);
absl::Status CheckSsdAddInitialStateParams(const SsdAddInitialStateParams& p);

namespace cpu {
absl::Status SsdScan(const SsdScanParams& p);
absl::Status SsdAddInitialState(const SsdAddInitialStateParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status SsdScan(const SsdScanParams& p, CudaStream stream);
absl::Status SsdAddInitialState(const SsdAddInitialStateParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
