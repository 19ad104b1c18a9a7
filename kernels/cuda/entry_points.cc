// Host entry points of the CUDA ops: each validates its params with the checks
// the CPU reference runs too (kernels/params_check.h: same checks, same
// INVALID_ARGUMENT messages), adds the limits of the CUDA kernels where they
// have any, enqueues the launcher of launch.h and turns the CUDA error into a
// status. Nothing derived from input aborts. Linear's GEMM is here too (cuBLAS
// is a host API), with one cuBLAS handle per thread and device (host_util.h),
// in fp32 math (no TF32), so results match the CPU to fp32 rounding. The bf16
// mode's entry points are in mixed_precision.cc.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <vector>

#include "common/status_macros.h"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/launch.h"
#include "kernels/params_check.h"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::CheckAttentionSupported;
using cuda_host::CublasHandle;
using cuda_host::FromCublas;
using cuda_host::FromCuda;
using params_check::StrideOr;

cudaStream_t ToCuda(CudaStream stream) { return stream; }

// inv_freq_i = 1 / theta^(2i / rotary_dim), exactly as the CPU reference forms it.
std::vector<float> RopeInverseFrequencies(float theta, int64_t rotary_dim) {
  std::vector<float> inv_freq(rotary_dim / 2);  // (rotary_dim / 2)
  for (int64_t i = 0; i < rotary_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    inv_freq[i] = 1.0f / std::pow(theta, exponent);
  }
  return inv_freq;
}

}  // namespace

absl::Status Linear(const LinearParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Linear";
  RETURN_IF_ERROR(CheckLinearParams(p));
  if (p.rows == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(cuda_host::CublasContext blas, CublasHandle(kOp));
  RETURN_IF_ERROR(FromCublas(kOp, blas.api->SetStream(blas.handle, ToCuda(stream))));
  float beta = p.accumulate ? 1.0f : 0.0f;
  if (p.bias != nullptr) {
    RETURN_IF_ERROR(FromCuda(kOp, cuda_launch::LinearBias(p, ToCuda(stream))));
    beta = 1.0f;
  }
  // Row-major y (M, N) = x (M, K) · Wᵀ is column-major yᵀ (N, M) = W' (N, K) · xᵀ (K, M),
  // where W row-major (N, K) read column-major is (K, N), hence OP_T.
  const float alpha = 1.0f;
  return FromCublas(
      kOp, blas.api->Sgemm(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(p.out_features),
                       static_cast<int>(p.rows), static_cast<int>(p.in_features), &alpha, p.weight,
                       static_cast<int>(p.in_features), p.x,
                       static_cast<int>(StrideOr(p.x_stride, p.in_features)), &beta, p.y,
                       static_cast<int>(StrideOr(p.y_stride, p.out_features))));
}

// Ids are device memory: they are copied back and checked before the gather,
// so this entry point synchronizes `stream` (and a bad id leaves out untouched).
absl::Status Embedding(const EmbeddingParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Embedding";
  RETURN_IF_ERROR(CheckEmbeddingParams(p));
  if (p.num_tokens == 0) return absl::OkStatus();
  RETURN_IF_ERROR(cuda_host::CheckDeviceTokenIds(kOp, p, ToCuda(stream)));
  return FromCuda(kOp, cuda_launch::Embedding(p, ToCuda(stream)));
}

absl::Status RmsNorm(const RmsNormParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckRmsNormParams(p));
  return FromCuda("RmsNorm", cuda_launch::RmsNorm(p, ToCuda(stream)));
}

absl::Status GatedRmsNorm(const GatedRmsNormParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckGatedRmsNormParams(p));
  return FromCuda("GatedRmsNorm", cuda_launch::GatedRmsNorm(p, ToCuda(stream)));
}

absl::Status DtSoftplus(const DtSoftplusParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckDtSoftplusParams(p));
  return FromCuda("DtSoftplus", cuda_launch::DtSoftplus(p, ToCuda(stream)));
}

absl::Status CausalConv1d(const CausalConv1dParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckCausalConv1dParams(p));
  return FromCuda("CausalConv1d", cuda_launch::CausalConv1d(p, ToCuda(stream)));
}

absl::Status SsdScan(const SsdScanParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckSsdScanParams(p));
  return FromCuda("SsdScan", cuda_launch::SsdScan(p, ToCuda(stream)));
}

absl::Status SsdAddInitialState(const SsdAddInitialStateParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckSsdAddInitialStateParams(p));
  if (p.seq_len == 0 && p.final_state == nullptr) return absl::OkStatus();
  return FromCuda("SsdAddInitialState", cuda_launch::SsdAddInitialState(p, ToCuda(stream)));
}

absl::Status SsdStep(const SsdStepParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckSsdStepParams(p));
  return FromCuda("SsdStep", cuda_launch::SsdStep(p, ToCuda(stream)));
}

absl::Status Rope(const RopeParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Rope";
  RETURN_IF_ERROR(CheckRopeParams(p));
  if (p.num_tokens == 0) return absl::OkStatus();
  const std::vector<float> inv_freq = RopeInverseFrequencies(p.theta, p.rotary_dim);
  float* device_inv_freq = nullptr;  // (rotary_dim / 2)
  RETURN_IF_ERROR(FromCuda(kOp, cudaMallocAsync(reinterpret_cast<void**>(&device_inv_freq),
                                                sizeof(float) * inv_freq.size(), ToCuda(stream))));
  // A pageable host-to-device copy returns once the source is staged, so the
  // host vector may go out of scope after it.
  absl::Status status = FromCuda(
      kOp, cudaMemcpyAsync(device_inv_freq, inv_freq.data(), sizeof(float) * inv_freq.size(),
                           cudaMemcpyHostToDevice, ToCuda(stream)));
  if (status.ok()) status = FromCuda(kOp, cuda_launch::Rope(p, device_inv_freq, ToCuda(stream)));
  const absl::Status freed = FromCuda(kOp, cudaFreeAsync(device_inv_freq, ToCuda(stream)));
  return status.ok() ? freed : status;
}

absl::Status Attention(const AttentionParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckAttentionParams(p));
  RETURN_IF_ERROR(CheckAttentionSupported(p, cuda_launch::kAttentionMaxHeadDim));
  return FromCuda("Attention", cuda_launch::Attention(p, ToCuda(stream)));
}

absl::Status AttentionMerge(const AttentionMergeParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckAttentionMergeParams(p));
  return FromCuda("AttentionMerge", cuda_launch::AttentionMerge(p, ToCuda(stream)));
}

absl::Status SiluMul(const SiluMulParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckSiluMulParams(p));
  return FromCuda("SiluMul", cuda_launch::SiluMul(p, ToCuda(stream)));
}

absl::Status ReluSquared(const ReluSquaredParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckReluSquaredParams(p));
  return FromCuda("ReluSquared", cuda_launch::ReluSquared(p, ToCuda(stream)));
}

}  // namespace tessera::cuda
