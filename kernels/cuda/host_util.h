// The host-side plumbing that the CUDA entry points (entry_points.cc,
// mixed_precision.cc) share, so that both report errors alike: CUDA and cuBLAS
// errors as absl::Status, one cuBLAS handle per thread and device, the check of
// device-resident token ids, and the limits of the attention kernels.
// Host-compiled only (the .cu files never include it).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/attention.h"
#include "kernels/cuda/cublas_api.h"
#include "kernels/embedding.h"

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

// Copies p.ids (num_tokens device int32) back and checks every id against
// the vocabulary (CheckEmbeddingTokenIds); synchronizes `stream`.
absl::Status CheckDeviceTokenIds(absl::string_view op, const EmbeddingParams& p,
                                 cudaStream_t stream);

// Beyond the shared checks of kernels/params_check.h: the head_dim the
// attention kernels instantiate (UNIMPLEMENTED above it) and the grid limit.
absl::Status CheckAttentionSupported(const AttentionParams& p, int64_t max_head_dim);

}  // namespace tessera::cuda_host
