// What every CUDA kernel benchmark in bench/ does the same way (METHOD.md):
// fail loudly on a CUDA error, fresh seeded random inputs (fp32 or bf16),
// and the median of CUDA-event timings after untimed warm-up runs.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

#define BENCH_CHECK(expr)                                                                              \
  do {                                                                                                 \
    cudaError_t e_ = (expr);                                                                           \
    if (e_ != cudaSuccess) {                                                                           \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_));       \
      std::exit(1);                                                                                    \
    }                                                                                                  \
  } while (0)

namespace tessera::bench {

// `n` floats uniform in [lo, hi) from a xorshift stream seeded by `seed`.
inline std::vector<float> RandomHost(int64_t n, float lo, float hi, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& e : v) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    e = lo + (hi - lo) * static_cast<float>(s >> 40) / static_cast<float>(1ull << 24);
  }
  return v;
}

inline uint16_t Bf16Bits(float f) {  // round to nearest even (finite inputs)
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// A device copy of `host`, as fp32 or as bf16 (cudaFree it).
inline void* Upload(const std::vector<float>& host, bool bf16) {
  void* d = nullptr;
  if (bf16) {
    std::vector<uint16_t> bits(host.size());
    for (size_t i = 0; i < host.size(); ++i) bits[i] = Bf16Bits(host[i]);
    BENCH_CHECK(cudaMalloc(&d, sizeof(uint16_t) * bits.size()));
    BENCH_CHECK(cudaMemcpy(d, bits.data(), sizeof(uint16_t) * bits.size(), cudaMemcpyHostToDevice));
  } else {
    BENCH_CHECK(cudaMalloc(&d, sizeof(float) * host.size()));
    BENCH_CHECK(cudaMemcpy(d, host.data(), sizeof(float) * host.size(), cudaMemcpyHostToDevice));
  }
  return d;
}

// `n` random values in [lo, hi) on the device, fp32 or bf16.
inline void* RandomDevice(int64_t n, float lo, float hi, uint64_t seed, bool bf16) {
  return Upload(RandomHost(n, lo, hi, seed), bf16);
}

inline std::vector<float> Download(const float* d, int64_t n) {
  std::vector<float> host(n);
  BENCH_CHECK(cudaMemcpy(host.data(), d, sizeof(float) * n, cudaMemcpyDeviceToHost));
  return host;
}

// Median milliseconds of `repeats` timed runs after `warmup` untimed ones.
inline double MedianMs(const std::function<void()>& run, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) run();
  BENCH_CHECK(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  BENCH_CHECK(cudaEventCreate(&start));
  BENCH_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    BENCH_CHECK(cudaEventRecord(start));
    run();
    BENCH_CHECK(cudaEventRecord(stop));
    BENCH_CHECK(cudaEventSynchronize(stop));
    float t = 0.0f;
    BENCH_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  BENCH_CHECK(cudaEventDestroy(start));
  BENCH_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

inline void Require(const absl::Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    std::exit(1);
  }
}

inline double RelativeL2(const std::vector<float>& got, const std::vector<float>& want) {
  double err2 = 0.0, ref2 = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    const double d = static_cast<double>(got[i]) - want[i];
    err2 += d * d;
    ref2 += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(err2 / ref2);
}

// Picks the attention kernel for the calls that follow (the values of
// TESSERA_ATTENTION_KERNEL, kernels/cuda/attention.cu); "default" unsets it.
inline void SelectAttentionKernel(const std::string& kernel) {
  if (kernel == "default") {
    unsetenv("TESSERA_ATTENTION_KERNEL");
  } else {
    setenv("TESSERA_ATTENTION_KERNEL", kernel.c_str(), 1);
  }
}

}  // namespace tessera::bench
