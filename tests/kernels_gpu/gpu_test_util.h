// Shared by the CUDA kernel tests: device buffers, the skip rule (no usable
// GPU → GTEST_SKIP, so a machine without one reports skipped, never passed),
// bf16 rounding on the host (kernel_test_util.h), and relative L2 helpers for outputs that may hold
// -inf by contract (log-sum-exp of rows that see no key).
#pragma once

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera::gpu_test {

using kernel_test::CloseInRelativeL2;
using kernel_test::FromBf16;
using kernel_test::FromBf16Bits;
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;
using kernel_test::RoundBf16;
using kernel_test::RoundedBf16;
using kernel_test::ToBf16;
using kernel_test::ToBf16Bits;

inline bool GpuAvailable() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// Every test of a GPU binary derives from this: it skips without a device and
// checks, after the test, that no CUDA error is pending.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!GpuAvailable()) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount failed or found 0)";
  }
  void TearDown() override {
    if (!GpuAvailable()) return;
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  }
};

// A device copy of a host vector; Download() brings it back after a sync.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : size_(host.size()) {
    if (size_ == 0) return;
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&ptr_), sizeof(T) * size_), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr_, host.data(), sizeof(T) * size_, cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  T* get() const { return ptr_; }
  std::vector<T> Download() const {
    std::vector<T> host(size_);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    if (size_ > 0) {
      EXPECT_EQ(cudaMemcpy(host.data(), ptr_, sizeof(T) * size_, cudaMemcpyDeviceToHost),
                cudaSuccess);
    }
    return host;
  }

 private:
  T* ptr_ = nullptr;
  size_t size_ = 0;
};

inline double RelativeL2(const std::vector<float>& got, const std::vector<double>& want) {
  double err2 = 0.0, ref2 = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double diff = got[i] - want[i];
    err2 += diff * diff;
    ref2 += want[i] * want[i];
  }
  return std::sqrt(err2 / ref2);
}

// Like CloseInRelativeL2, but -inf must match -inf exactly (and only there);
// the finite entries are compared by relative L2.
inline ::testing::AssertionResult CloseAllowingNegInf(const std::vector<float>& got,
                                                      const std::vector<float>& want,
                                                      double tolerance) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size mismatch";
  std::vector<float> got_finite, want_finite;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool want_ninf = want[i] == -INFINITY;
    const bool got_ninf = got[i] == -INFINITY;
    if (want_ninf != got_ninf) {
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << got[i] << ", want " << want[i];
    }
    if (!want_ninf) {
      got_finite.push_back(got[i]);
      want_finite.push_back(want[i]);
    }
  }
  if (want_finite.empty()) return ::testing::AssertionSuccess() << "all -inf, matched";
  return CloseInRelativeL2(got_finite, want_finite, tolerance);
}

}  // namespace tessera::gpu_test
