// Launchers of the CUDA kernels, one per op, shared between the .cu files
// (compiled by nvcc) and entry_points.cc (compiled by the host compiler), which
// validates params with the checks the CPU reference runs too
// (kernels/params_check.h) and turns the cudaError_t into an absl::Status. A
// launcher assumes validated params, enqueues its kernels on `stream` and
// returns the launch error; it never synchronizes unless its comment says so.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/causal_conv1d.h"
#include "kernels/dt_softplus.h"
#include "kernels/embedding.h"
#include "kernels/gated_rms_norm.h"
#include "kernels/linear.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/ssd_scan.h"
#include "kernels/ssd_step.h"

namespace tessera::cuda_launch {

// y = bias (accumulate false) or y += bias (accumulate true), before the GEMM.
cudaError_t LinearBias(const LinearParams& p, cudaStream_t stream);
// out[t] = table[ids[t]]; ids already checked against the vocabulary.
cudaError_t Embedding(const EmbeddingParams& p, cudaStream_t stream);
cudaError_t RmsNorm(const RmsNormParams& p, cudaStream_t stream);
cudaError_t GatedRmsNorm(const GatedRmsNormParams& p, cudaStream_t stream);
cudaError_t DtSoftplus(const DtSoftplusParams& p, cudaStream_t stream);
cudaError_t CausalConv1d(const CausalConv1dParams& p, cudaStream_t stream);
cudaError_t SsdScan(const SsdScanParams& p, cudaStream_t stream);
cudaError_t SsdAddInitialState(const SsdAddInitialStateParams& p, cudaStream_t stream);
cudaError_t SsdStep(const SsdStepParams& p, cudaStream_t stream);
// inv_freq: (rotary_dim / 2) device floats, computed on the host as the CPU does.
cudaError_t Rope(const RopeParams& p, const float* inv_freq, cudaStream_t stream);
cudaError_t Attention(const AttentionParams& p, cudaStream_t stream);
cudaError_t AttentionMerge(const AttentionMergeParams& p, cudaStream_t stream);
cudaError_t SiluMul(const SiluMulParams& p, cudaStream_t stream);
cudaError_t ReluSquared(const ReluSquaredParams& p, cudaStream_t stream);

// Largest head_dim the attention kernels instantiate.
inline constexpr int64_t kAttentionMaxHeadDim = 256;

// The attention kernel reading bf16 q/k/v (same layout and strides as
// AttentionParams, in elements), fp32 softmax, accumulation and output. Used by
// the bf16 accuracy test; head_dim <= kAttentionBf16MaxHeadDim.
inline constexpr int64_t kAttentionBf16MaxHeadDim = 128;
struct AttentionBf16Params {
  AttentionParams p;       // q, k, v of p are ignored
  const void* q = nullptr;  // __nv_bfloat16
  const void* k = nullptr;
  const void* v = nullptr;
};
cudaError_t AttentionBf16(const AttentionBf16Params& p, cudaStream_t stream);

}  // namespace tessera::cuda_launch
