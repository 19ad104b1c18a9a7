// Linear through cuBLAS (loaded with dlopen, cublas_api.h), one handle per
// thread and device (host_util.h), except the few-row bf16 products of a
// decode step, which go to the GEMV (kernels/cuda/linear_gemv.h: cuBLAS's
// one-row kernels split K over a second reduction kernel and read W below
// copy speed on some of the step's shapes). The bias step is the one kernel here:
// y = bias (or y += bias when accumulating) laid into y before one GEMM with
// beta = 1 finishes the job, as the CPU does. The GEMM dispatches on the
// operands' type once: fp32 is Sgemm in the default math mode (no TF32), so
// results match the CPU to fp32 rounding; bf16 is GemmEx with fp32
// accumulation and an fp32 or bf16 y (C = D, rounded once on store). The
// entry point runs the shared checks (kernels/linear.cc) first.
#include "kernels/linear.h"

#include <cublas_v2.h>

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/linear_gemv.h"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::CublasHandle;
using cuda_host::FromCublas;
using cuda_host::FromCuda;
using cuda_launch::FromFloat;
using cuda_launch::GridFor;
using cuda_launch::ToFloat;
using cuda_launch::WithDeviceType;
using params_check::StrideOr;

template <typename Y>
__global__ void LinearBiasKernel(LinearParams p, int64_t y_stride) {
  const int64_t count = p.rows * p.out_features;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / p.out_features;
    const int64_t n = i - r * p.out_features;
    Y* y = static_cast<Y*>(p.y) + r * y_stride + n;
    *y = FromFloat<Y>(p.accumulate ? ToFloat(*y) + p.bias[n] : p.bias[n]);
  }
}

cudaError_t LaunchLinearBias(const LinearParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.bias == nullptr) return cudaSuccess;
  constexpr int kThreads = 256;
  return WithDeviceType(p.y_type, [&](auto y) {
    LinearBiasKernel<decltype(y)><<<GridFor(p.rows * p.out_features, kThreads), kThreads, 0, stream>>>(
        p, p.y_stride == 0 ? p.out_features : p.y_stride);
    return cudaGetLastError();
  });
}

cudaDataType CudaDataType(ElementType type) {
  return type == ElementType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
}

}  // namespace

absl::Status Linear(const LinearParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Linear";
  RETURN_IF_ERROR(CheckLinearParams(p));
  if (p.rows == 0) return absl::OkStatus();
  if (LinearGemvTakes(p)) return LinearGemv(p, {}, stream);
  ASSIGN_OR_RETURN(cuda_host::CublasContext blas, CublasHandle(kOp));
  // SetStream also puts the handle back on its own workspace.
  RETURN_IF_ERROR(FromCublas(kOp, blas.api->SetStream(blas.handle, stream)));
  if (p.workspace != nullptr) {
    RETURN_IF_ERROR(FromCublas(kOp, blas.api->SetWorkspace(blas.handle, p.workspace,
                                                           static_cast<size_t>(p.workspace_bytes))));
  }
  float beta = p.accumulate ? 1.0f : 0.0f;
  if (p.bias != nullptr) {
    RETURN_IF_ERROR(FromCuda(kOp, LaunchLinearBias(p, stream)));
    beta = 1.0f;
  }
  // Row-major y (M, N) = x (M, K) · Wᵀ is column-major yᵀ (N, M) = W' (N, K) · xᵀ (K, M),
  // where W row-major (N, K) read column-major is (K, N), hence OP_T.
  const float alpha = 1.0f;
  const int m = static_cast<int>(p.out_features);
  const int n = static_cast<int>(p.rows);
  const int k = static_cast<int>(p.in_features);
  const int ldx = static_cast<int>(StrideOr(p.x_stride, p.in_features));
  const int ldy = static_cast<int>(StrideOr(p.y_stride, p.out_features));
  switch (p.type) {
    case ElementType::kF32:
      return FromCublas(kOp, blas.api->Sgemm(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha,
                                             static_cast<const float*>(p.weight), k,
                                             static_cast<const float*>(p.x), ldx, &beta,
                                             static_cast<float*>(p.y), ldy));
    case ElementType::kBF16:
      return FromCublas(kOp, blas.api->GemmEx(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha,
                                              p.weight, CUDA_R_16BF, k, p.x, CUDA_R_16BF, ldx, &beta,
                                              p.y, CudaDataType(p.y_type), ldy, CUBLAS_COMPUTE_32F,
                                              CUBLAS_GEMM_DEFAULT));
  }
  return absl::InternalError("Linear: unhandled type");  // rejected by the checks
}

}  // namespace tessera::cuda
