// Makes a CUDA device current for one scope and restores the caller's after.
//
// Why: NCCL and the CUDA runtime act on the calling thread's current device,
// and our calls arrive on arbitrary gRPC threads that may last have touched
// another GPU. Every entry point that touches a communicator, its stream or
// its buffers pins the communicator's device first.
#pragma once

#include <cuda_runtime_api.h>

namespace tessera {

class CudaDeviceScope {
 public:
  explicit CudaDeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) {
      status_ = cudaSetDevice(device);
      changed_ = status_ == cudaSuccess && previous_ >= 0;
    }
  }
  ~CudaDeviceScope() {
    if (changed_) cudaSetDevice(previous_);
  }
  CudaDeviceScope(const CudaDeviceScope&) = delete;
  CudaDeviceScope& operator=(const CudaDeviceScope&) = delete;

  // cudaSuccess, or why the device could not be made current.
  cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  bool changed_ = false;
  cudaError_t status_ = cudaSuccess;
};

}  // namespace tessera
