// The host-side plumbing that the CUDA entry points (kernels/cuda/<op>.cu)
// share, so that all report errors alike: CUDA and cuBLAS errors as
// absl::Status, and one cuBLAS handle per thread and device. Nothing here
// knows an op; an op's own limits live in its .cu file.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/cuda/cublas_api.h"
#include "kernels/cuda_stream.h"

namespace tessera::cuda_host {

// "<op>: <cudaError name>: <description>"; RESOURCE_EXHAUSTED for an
// allocation failure, INVALID_ARGUMENT for cudaErrorInvalidValue, else INTERNAL.
absl::Status FromCuda(absl::string_view op, cudaError_t e);
absl::Status FromCublas(absl::string_view op, cublasStatus_t s);

// The loaded cuBLAS (cublas_api.h) and this thread's handle for the current
// device: one per (thread, device), created on first use in the default math
// mode (no TF32) and kept for the thread.
struct CublasContext {
  const CublasApi* api = nullptr;
  cublasHandle_t handle = nullptr;
};
absl::StatusOr<CublasContext> CublasHandle(absl::string_view op);

}  // namespace tessera::cuda_host
