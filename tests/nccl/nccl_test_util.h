// Shared by the NCCL transport tests: the skip rules (no CUDA device → skip;
// two-rank tests need two devices, one rank per GPU on threads of this
// process), a stream per rank, stream-ordered device buffers, fresh random
// data.
//
// Why stream-ordered buffers: a test whose NCCL call was aborted may leave
// the aborted kernel on its stream for a while; cudaFree would wait for it
// (it synchronizes the device), cudaFreeAsync and cudaStreamDestroy do not.
#pragma once

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda_stream.h"

namespace tessera::nccl_test {

inline int GpuCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

// Every test derives from this: it skips unless `kGpus` devices exist.
template <int kGpus>
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int found = GpuCount();
    if (found == 0) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount failed or found 0)";
    if (found < kGpus) GTEST_SKIP() << "needs " << kGpus << " CUDA devices, found " << found;
  }
};
using OneGpuTest = GpuTest<1>;
using TwoGpuTest = GpuTest<2>;

// Generous limits: success paths never come near them, failure tests assert
// only upper bounds around them.
constexpr std::chrono::milliseconds kJoinTimeout{60000};
constexpr std::chrono::milliseconds kOpTimeout{60000};
constexpr std::chrono::milliseconds kShortTimeout{2000};
constexpr std::chrono::milliseconds kSlack{5000};

inline std::chrono::milliseconds MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

// A non-blocking stream on `device`, which it also makes current.
class TestStream {
 public:
  explicit TestStream(int device) {
    EXPECT_EQ(cudaSetDevice(device), cudaSuccess);
    EXPECT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
  }
  ~TestStream() { cudaStreamDestroy(stream_); }
  TestStream(const TestStream&) = delete;
  TestStream& operator=(const TestStream&) = delete;
  CudaStream get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// `bytes` of device memory on `stream`, poisoned (0xCD) until written.
class DeviceBytes {
 public:
  DeviceBytes(CudaStream stream, size_t bytes) : stream_(stream), bytes_(bytes) {
    EXPECT_EQ(cudaMallocAsync(&ptr_, bytes == 0 ? 1 : bytes, stream_), cudaSuccess);
    EXPECT_EQ(cudaMemsetAsync(ptr_, 0xCD, bytes == 0 ? 1 : bytes, stream_), cudaSuccess);
  }
  DeviceBytes(CudaStream stream, const std::vector<uint8_t>& host) : DeviceBytes(stream, host.size()) {
    if (!host.empty()) {
      EXPECT_EQ(cudaMemcpyAsync(ptr_, host.data(), host.size(), cudaMemcpyHostToDevice, stream_), cudaSuccess);
    }
  }
  ~DeviceBytes() { cudaFreeAsync(ptr_, stream_); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;

  void* get() const { return ptr_; }
  // Only after a successful call: waits for the stream.
  std::vector<uint8_t> Download() const {
    std::vector<uint8_t> host(bytes_);
    if (bytes_ > 0) {
      EXPECT_EQ(cudaMemcpyAsync(host.data(), ptr_, bytes_, cudaMemcpyDeviceToHost, stream_), cudaSuccess);
    }
    EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    return host;
  }

 private:
  CudaStream stream_;
  size_t bytes_;
  void* ptr_ = nullptr;
};

// Fresh random data per run; the seed goes into failure messages.
inline uint64_t FreshSeed() { return (uint64_t{std::random_device{}()} << 32) | std::random_device{}(); }

inline std::vector<uint8_t> RandomBytes(size_t n, std::mt19937_64& rng) {
  std::vector<uint8_t> bytes(n);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

inline std::vector<float> RandomFloats(size_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(n);
  for (auto& v : values) v = dist(rng);
  return values;
}

// Runs fn(rank) for every rank on its own thread and joins them all.
template <typename Fn>
void RunRanks(int size, Fn&& fn) {
  std::vector<std::thread> threads;
  for (int rank = 0; rank < size; ++rank) threads.emplace_back([&fn, rank] { fn(rank); });
  for (auto& thread : threads) thread.join();
}

}  // namespace tessera::nccl_test
