// Host entry points of the CUDA ops: each validates its params with the checks
// the CPU reference runs too (kernels/params_check.h: same checks, same
// INVALID_ARGUMENT messages), adds the limits of the CUDA kernels where they
// have any, enqueues the launcher of launch.h and turns the CUDA error into a
// status. Nothing derived from input aborts. Linear's GEMM is here too (cuBLAS
// is a host API), with one cuBLAS handle per thread and device, in fp32 math
// (no TF32), so results match the CPU to fp32 rounding.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <vector>

#include "common/status_macros.h"
#include "kernels/cuda/bf16_ops.h"
#include "kernels/cuda/launch.h"
#include "kernels/params_check.h"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using params_check::CheckFitsBlasInt;
using params_check::CheckPositive;
using params_check::StrideOr;

cudaStream_t ToCuda(CudaStream stream) { return stream; }

absl::Status FromCuda(absl::string_view op, cudaError_t e) {
  if (e == cudaSuccess) return absl::OkStatus();
  const std::string what = absl::StrCat(op, ": ", cudaGetErrorName(e), ": ", cudaGetErrorString(e));
  if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(what);
  if (e == cudaErrorInvalidValue) return absl::InvalidArgumentError(what);
  return absl::InternalError(what);
}

absl::Status FromCublas(absl::string_view op, cublasStatus_t s) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string what = absl::StrCat(op, ": cuBLAS ", cublasGetStatusName(s), ": ",
                                        cublasGetStatusString(s));
  if (s == CUBLAS_STATUS_ALLOC_FAILED) return absl::ResourceExhaustedError(what);
  return absl::InternalError(what);
}

// One handle per (thread, device), created on first use and kept for the thread.
absl::StatusOr<cublasHandle_t> CublasHandle(absl::string_view op) {
  constexpr int kMaxDevices = 64;
  struct Handles {
    cublasHandle_t h[kMaxDevices] = {};
    ~Handles() {
      for (cublasHandle_t handle : h) {
        if (handle != nullptr) cublasDestroy(handle);
      }
    }
  };
  thread_local Handles handles;
  int device = 0;
  RETURN_IF_ERROR(FromCuda(op, cudaGetDevice(&device)));
  if (device < 0 || device >= kMaxDevices) return absl::InternalError("device index out of range");
  cublasHandle_t& handle = handles.h[device];
  if (handle == nullptr) {
    RETURN_IF_ERROR(FromCublas(op, cublasCreate(&handle)));
    RETURN_IF_ERROR(FromCublas(op, cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH)));
  }
  return handle;
}

// Beyond the shared checks of kernels/params_check.h: what the CUDA kernels
// instantiate.
absl::Status CheckAttentionSupported(const AttentionParams& p, int64_t max_head_dim) {
  if (p.head_dim > max_head_dim) {
    return absl::UnimplementedError(absl::StrCat(
        "Attention (CUDA): head_dim must be <= ", max_head_dim, ". Given: ", p.head_dim));
  }
  if (p.num_q_heads > 65535) {
    return absl::UnimplementedError(
        absl::StrCat("Attention (CUDA): num_q_heads must be <= 65535. Given: ", p.num_q_heads));
  }
  return absl::OkStatus();
}

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
  ASSIGN_OR_RETURN(cublasHandle_t handle, CublasHandle(kOp));
  RETURN_IF_ERROR(FromCublas(kOp, cublasSetStream(handle, ToCuda(stream))));
  float beta = p.accumulate ? 1.0f : 0.0f;
  if (p.bias != nullptr) {
    RETURN_IF_ERROR(FromCuda(kOp, cuda_launch::LinearBias(p, ToCuda(stream))));
    beta = 1.0f;
  }
  // Row-major y (M, N) = x (M, K) · Wᵀ is column-major yᵀ (N, M) = W' (N, K) · xᵀ (K, M),
  // where W row-major (N, K) read column-major is (K, N), hence OP_T.
  const float alpha = 1.0f;
  return FromCublas(
      kOp, cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(p.out_features),
                       static_cast<int>(p.rows), static_cast<int>(p.in_features), &alpha, p.weight,
                       static_cast<int>(p.in_features), p.x,
                       static_cast<int>(StrideOr(p.x_stride, p.in_features)), &beta, p.y,
                       static_cast<int>(StrideOr(p.y_stride, p.out_features))));
}

absl::Status LinearBf16(int64_t rows, int64_t in_features, int64_t out_features, const void* x,
                        const void* weight, float* y, CudaStream stream) {
  constexpr absl::string_view kOp = "LinearBf16";
  RETURN_IF_ERROR(CheckPositive(kOp, "rows", rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "in_features", in_features));
  RETURN_IF_ERROR(CheckPositive(kOp, "out_features", out_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "rows", rows));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "in_features", in_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "out_features", out_features));
  ASSIGN_OR_RETURN(cublasHandle_t handle, CublasHandle(kOp));
  RETURN_IF_ERROR(FromCublas(kOp, cublasSetStream(handle, ToCuda(stream))));
  const float alpha = 1.0f, beta = 0.0f;
  return FromCublas(
      kOp, cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out_features),
                        static_cast<int>(rows), static_cast<int>(in_features), &alpha, weight,
                        CUDA_R_16BF, static_cast<int>(in_features), x, CUDA_R_16BF,
                        static_cast<int>(in_features), &beta, y, CUDA_R_32F,
                        static_cast<int>(out_features), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// Ids are device memory: they are copied back and checked before the gather,
// so this entry point synchronizes `stream` (and a bad id leaves out untouched).
absl::Status Embedding(const EmbeddingParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Embedding";
  RETURN_IF_ERROR(CheckEmbeddingParams(p));
  if (p.num_tokens == 0) return absl::OkStatus();
  std::vector<int32_t> ids(p.num_tokens);
  RETURN_IF_ERROR(FromCuda(kOp, cudaMemcpyAsync(ids.data(), p.ids, sizeof(int32_t) * ids.size(),
                                                cudaMemcpyDeviceToHost, ToCuda(stream))));
  RETURN_IF_ERROR(FromCuda(kOp, cudaStreamSynchronize(ToCuda(stream))));
  RETURN_IF_ERROR(CheckEmbeddingTokenIds(ids.data(), p.num_tokens, p.vocab_size));
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

absl::Status AttentionBf16(const AttentionParams& p, const void* q, const void* k, const void* v,
                           CudaStream stream) {
  AttentionParams checked = p;
  // The fp32 pointers are unused; validate the bf16 ones in their place.
  checked.q = static_cast<const float*>(q);
  checked.k = static_cast<const float*>(k);
  checked.v = static_cast<const float*>(v);
  RETURN_IF_ERROR(CheckAttentionParams(checked));
  RETURN_IF_ERROR(CheckAttentionSupported(p, cuda_launch::kAttentionBf16MaxHeadDim));
  cuda_launch::AttentionBf16Params bp{p, q, k, v};
  return FromCuda("AttentionBf16", cuda_launch::AttentionBf16(bp, ToCuda(stream)));
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
