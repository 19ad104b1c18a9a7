// The shared host plumbing of the CUDA entry points (see host_util.h): one
// spelling of CUDA/cuBLAS failures, one cuBLAS handle cache, one token-id check.
#include "kernels/cuda/host_util.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/params_check.h"

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

absl::Status CheckDeviceTokenIds(absl::string_view op, const EmbeddingParams& p,
                                 cudaStream_t stream) {
  std::vector<int32_t> ids(p.num_tokens);  // (num_tokens)
  RETURN_IF_ERROR(FromCuda(op, cudaMemcpyAsync(ids.data(), p.ids, sizeof(int32_t) * ids.size(),
                                               cudaMemcpyDeviceToHost, stream)));
  RETURN_IF_ERROR(FromCuda(op, cudaStreamSynchronize(stream)));
  return CheckEmbeddingTokenIds(ids.data(), p.num_tokens, p.vocab_size);
}

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

}  // namespace tessera::cuda_host
