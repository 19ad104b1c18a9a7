// The routed experts of a mixture-of-experts layer: every token runs the k
// experts MoeRoute chose and adds their outputs, weighted, to y:
//   y[t] += Σ_j w[t, j] · down_e · act(up_e · x[t]),   e = ids[t, j]
// with act relu² (nemotron_h experts: up (E, I, H)) or SwiGLU over a fused
// projection (granitemoehybrid's input_linear: up (E, 2I, H), rows [0, I) the
// gate, [I, 2I) the up half: silu(gate) · up). Each token's sum runs over its
// experts in ascending index order, as transformers' index_add_ loop does.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

enum class MoeExpertActivation { kRelu2, kSwiGluFused };

struct MoeExpertsParams {
  int64_t tokens = 0;        // T (may be 0)
  int64_t hidden = 0;        // H
  int64_t experts = 0;       // E
  int64_t top_k = 0;         // k
  int64_t intermediate = 0;  // I, each expert's width
  MoeExpertActivation activation = MoeExpertActivation::kRelu2;
  ElementType type = ElementType::kF32;  // of x, up and down
  const void* x = nullptr;   // (T, H) of `type`, row stride x_stride
  int64_t x_stride = 0;      // 0 means H
  const int32_t* expert_ids = nullptr;   // (T, k) in [0, E) (MoeRoute)
  const float* expert_weights = nullptr; // (T, k)
  const void* up = nullptr;    // (E, I, H) for kRelu2, (E, 2I, H) for kSwiGluFused; of `type`
  const void* down = nullptr;  // (E, H, I) of `type`
  float* y = nullptr;          // (T, H) fp32, row stride y_stride; accumulated into
  int64_t y_stride = 0;        // 0 means H
  // Device scratch of MoeExpertsWorkspaceBytes(p) bytes, 256-byte aligned, that
  // the caller owns (sized once for its largest T, reused by every call on the
  // stream); its contents on entry do not matter. The CUDA backend needs it
  // when T > 0; the CPU ignores it.
  void* workspace = nullptr;
};

// The contract's checks (kernels/moe_experts.cc), which every backend runs first.
absl::Status CheckMoeExpertsParams(const MoeExpertsParams& p);

// What the CUDA backend keeps in `workspace`: byte offsets of its regions,
// each 256-byte aligned, for P = T·k (token, slot) pairs, chunks of 2048 pairs
// and I8 = I rounded up to a multiple of 8. Depends on T, k, E, H, I and type.
struct MoeExpertsWorkspaceLayout {
  static constexpr int64_t kChunk = 2048;  // pairs per chunk of the counting sort
  int64_t chunk_starts = 0;  // (chunks, E) int32: where each chunk's pairs of expert e go
  int64_t row_starts = 0;    // (E + 1) int32: first permuted row of each expert
  int64_t tile_starts = 0;   // (3, E + 1) int32: first m-tile of each expert, tiles of 32, 64, 128 rows
  int64_t pair_of_row = 0;   // (P) int32: pair t·k + j at each permuted row, by expert, then t, then j
  int64_t row_of_pair = 0;   // (P) int32: permuted row of each pair; -1 for an id outside [0, E)
  int64_t act = 0;           // (P, I8) of type: act(up · x), permuted rows
  int64_t out = 0;           // (P, H) of type: down · act, permuted rows, before weighting
  int64_t bytes = 0;         // the whole
};
MoeExpertsWorkspaceLayout MoeExpertsWorkspace(const MoeExpertsParams& p);
// MoeExpertsWorkspace(p).bytes: about P · (2H + I) · bytes(type), e.g. 1.42 GB
// for 16K tokens of nemotron-3-nano in bf16 (H 2688, I 1856, k 6).
int64_t MoeExpertsWorkspaceBytes(const MoeExpertsParams& p);

namespace cpu {
// fp32 only; an id outside [0, E) is INVALID_ARGUMENT and leaves y untouched.
absl::Status MoeExperts(const MoeExpertsParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream`, with no host
// synchronisation and no allocation: the (token, slot) pairs are sorted by
// expert on the device (a stable counting sort), one grouped launch runs every
// expert's up projection on x's rows in that order (read through the sort's
// row table, not copied) with the activation in its epilogue, one grouped
// launch the down projections, and each token then
// sums its k rows, weighted, in ascending expert order (deterministic: no
// atomics on y). bf16 runs on tensor cores with fp32 accumulation (wgmma when
// experts average 64 rows or more, H, I and x's row stride are multiples of 8
// and x, up, down are 16-byte aligned, else
// mma.sync); fp32 on CUDA cores in fp32 (within 1e-5 of the CPU). An id outside
// [0, E) contributes nothing (the device cannot report it without a sync).
// CUDA limits: experts <= 1024, T·k < 2^31; workspace required when T > 0.
namespace cuda {
absl::Status MoeExperts(const MoeExpertsParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
