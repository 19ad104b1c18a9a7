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

// Largest head_dim the attention kernels instantiate (fp32 and bf16 alike).
inline constexpr int64_t kAttentionMaxHeadDim = 256;

// The bf16 mode (mixed_precision.h). Operands stored as bf16 are passed as
// void* (__nv_bfloat16 in the .cu files, so host code needs no cuda_bf16.h);
// strides are in elements.

// Attention with q, k, v stored as bf16 in the layout and strides of p
// (p.q/k/v ignored); the kernel of Attention, so the same features and limits.
cudaError_t AttentionBf16(const AttentionParams& p, const void* q, const void* k, const void* v,
                          cudaStream_t stream);
// out[t] = table[ids[t]] widened to fp32, the table (vocab_size, hidden) bf16
// (p.table ignored); ids already checked against the vocabulary.
cudaError_t EmbeddingBf16(const EmbeddingParams& p, const void* table, cudaStream_t stream);

// A strided row copy (rows, width) between storage types; strides already
// resolved from 0 (>= width), in elements of their own array.
struct CastRowsParams {
  int64_t rows = 0;
  int64_t width = 0;
  const void* in = nullptr;  // (rows, width), row stride in_stride
  int64_t in_stride = 0;
  void* out = nullptr;       // (rows, width), row stride out_stride
  int64_t out_stride = 0;
};
// bf16 out = fp32 in, rounded to nearest even.
cudaError_t CastF32ToBf16(const CastRowsParams& p, cudaStream_t stream);
// fp32 out = bf16 in (exact).
cudaError_t CastBf16ToF32(const CastRowsParams& p, cudaStream_t stream);
// fp32 out = fp32 in.
cudaError_t CopyF32(const CastRowsParams& p, cudaStream_t stream);

}  // namespace tessera::cuda_launch
