// Device memory with an owner. DeviceBuffer: long-lived (weights, K/V,
// states), cudaMalloc/cudaFree on the device current at allocation.
// StreamBuffer: scratch of one forward pass, stream-ordered
// (cudaMallocAsync/cudaFreeAsync on the pass's stream), so the pool recycles
// it without synchronizing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "worker/cuda/cuda_status.h"

namespace tessera::cuda_engine {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) {
    DeviceBuffer b;
    if (bytes == 0) return b;
    if (absl::Status s = CudaStatus(absl::StrCat("cudaMalloc of ", bytes, " bytes"), cudaMalloc(&b.ptr_, bytes));
        !s.ok()) {
      return s;
    }
    b.bytes_ = bytes;
    return b;
  }
  // Zero-filled.
  static absl::StatusOr<DeviceBuffer> AllocateZeroed(size_t bytes) {
    absl::StatusOr<DeviceBuffer> b = Allocate(bytes);
    if (b.ok() && bytes > 0) {
      if (absl::Status s = CudaStatus("cudaMemset", cudaMemset(b->ptr_, 0, bytes)); !s.ok()) return s;
    }
    return b;
  }
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }
  void Reset() {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class StreamBuffer {
 public:
  StreamBuffer() = default;
  static absl::StatusOr<StreamBuffer> Allocate(size_t bytes, cudaStream_t stream) {
    StreamBuffer b;
    b.stream_ = stream;
    if (bytes == 0) return b;
    if (absl::Status s = CudaStatus(absl::StrCat("cudaMallocAsync of ", bytes, " bytes"),
                                    cudaMallocAsync(&b.ptr_, bytes, stream));
        !s.ok()) {
      return s;
    }
    b.bytes_ = bytes;
    return b;
  }
  ~StreamBuffer() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  StreamBuffer(StreamBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)), stream_(o.stream_) {}
  StreamBuffer& operator=(StreamBuffer&& o) noexcept {
    if (this != &o) {
      if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
      stream_ = o.stream_;
    }
    return *this;
  }
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  cudaStream_t stream_ = nullptr;
};

}  // namespace tessera::cuda_engine
