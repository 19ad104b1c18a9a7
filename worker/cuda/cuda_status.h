// cudaError_t -> absl::Status for the CUDA engine, naming what failed.
// Out of memory is RESOURCE_EXHAUSTED (a request too large for the GPU),
// everything else INTERNAL.
#pragma once

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tessera::cuda_engine {

inline absl::Status CudaStatus(absl::string_view what, cudaError_t e) {
  if (e == cudaSuccess) return absl::OkStatus();
  const std::string message = absl::StrCat(what, ": ", cudaGetErrorName(e), ": ", cudaGetErrorString(e));
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // an allocation failure is not sticky: clear it
    return absl::ResourceExhaustedError(message);
  }
  return absl::InternalError(message);
}

}  // namespace tessera::cuda_engine
