// The shared host plumbing of the CUDA entry points (see host_util.h): one
// spelling of CUDA/cuBLAS failures, one cuBLAS handle cache.
#include "kernels/cuda/host_util.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tessera::cuda_host {

absl::Status FromCuda(absl::string_view op, cudaError_t e) {
  if (e == cudaSuccess) return absl::OkStatus();
  const std::string what = absl::StrCat(op, ": ", cudaGetErrorName(e), ": ", cudaGetErrorString(e));
  if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(what);
  if (e == cudaErrorInvalidValue) return absl::InvalidArgumentError(what);
  return absl::InternalError(what);
}

absl::Status FromCublas(absl::string_view op, cublasStatus_t s) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  absl::StatusOr<const CublasApi*> api = Cublas();  // loaded: a status came from it
  const std::string what = api.ok() ? absl::StrCat(op, ": cuBLAS ", (*api)->GetStatusName(s), ": ",
                                                   (*api)->GetStatusString(s))
                                    : absl::StrCat(op, ": cuBLAS status ", static_cast<int>(s));
  if (s == CUBLAS_STATUS_ALLOC_FAILED) return absl::ResourceExhaustedError(what);
  return absl::InternalError(what);
}

absl::StatusOr<CublasContext> CublasHandle(absl::string_view op) {
  ASSIGN_OR_RETURN(const CublasApi* api, Cublas());
  constexpr int kMaxDevices = 64;
  struct Handles {
    const CublasApi* api = nullptr;
    cublasHandle_t h[kMaxDevices] = {};
    ~Handles() {
      for (cublasHandle_t handle : h) {
        if (handle != nullptr) api->Destroy(handle);
      }
    }
  };
  thread_local Handles handles;
  handles.api = api;
  int device = 0;
  RETURN_IF_ERROR(FromCuda(op, cudaGetDevice(&device)));
  if (device < 0 || device >= kMaxDevices) return absl::InternalError("device index out of range");
  cublasHandle_t& handle = handles.h[device];
  if (handle == nullptr) {
    RETURN_IF_ERROR(FromCublas(op, api->Create(&handle)));
    RETURN_IF_ERROR(FromCublas(op, api->SetMathMode(handle, CUBLAS_DEFAULT_MATH)));
  }
  return CublasContext{api, handle};
}

}  // namespace tessera::cuda_host
