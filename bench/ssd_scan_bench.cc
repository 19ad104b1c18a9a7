// Times the CUDA SsdScan and Attention (fp32) at a realistic prefill size with
// CUDA events: warm-up runs, then the median of timed repeats, on random (never
// zero) inputs. Prints one line per op with the time and the implied rate.
// Usage: ssd_scan_bench [seq_len]   (default 8192). Compare with
// bench/sdpa_bench.py (PyTorch scaled_dot_product_attention) at the same size.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "kernels/attention.h"
#include "kernels/ssd_scan.h"

namespace {

#define BENCH_CHECK(expr)                                                            \
  do {                                                                               \
    cudaError_t e_ = (expr);                                                         \
    if (e_ != cudaSuccess) {                                                         \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr,              \
                   cudaGetErrorString(e_));                                          \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

// A device array of `n` floats uniform in [lo, hi).
float* RandomDevice(int64_t n, float lo, float hi, uint64_t seed) {
  std::vector<float> host(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& v : host) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    v = lo + (hi - lo) * static_cast<float>(s >> 40) / static_cast<float>(1ull << 24);
  }
  float* d = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), sizeof(float) * n));
  BENCH_CHECK(cudaMemcpy(d, host.data(), sizeof(float) * n, cudaMemcpyHostToDevice));
  return d;
}

// Median milliseconds of `repeats` timed runs after `warmup` untimed ones.
double MedianMs(const std::function<void()>& run, int warmup, int repeats) {
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

void Require(const absl::Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t L = argc > 1 ? std::atoll(argv[1]) : 8192;
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  // Keep freed stream-ordered scratch in the pool between calls, as an engine
  // would at start-up, so the timings measure kernels rather than the allocator.
  cudaMemPool_t pool;
  BENCH_CHECK(cudaDeviceGetDefaultMemPool(&pool, 0));
  uint64_t keep = UINT64_MAX;
  BENCH_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));

  {  // SsdScan: H=128, P=64, N=128, G=8, Q=256 (a Mamba-2 2.7B-like layer), zero h0.
    const int64_t H = 128, P = 64, N = 128, G = 8, Q = 256;
    tessera::SsdScanParams p{L, H, P, G, N, Q};
    p.x = RandomDevice(L * H * P, -1.0f, 1.0f, 1);
    p.dt = RandomDevice(L * H, 0.01f, 0.2f, 2);
    p.A = RandomDevice(H, -4.0f, -0.25f, 3);
    p.B = RandomDevice(L * G * N, -1.0f, 1.0f, 4);
    p.C = RandomDevice(L * G * N, -1.0f, 1.0f, 5);
    p.D = RandomDevice(H, 0.5f, 1.5f, 6);
    float* y = RandomDevice(L * H * P, 0.0f, 1.0f, 7);
    float* final_state = RandomDevice(H * P * N, 0.0f, 1.0f, 8);
    float* log_decay = RandomDevice(H, 0.0f, 1.0f, 9);
    p.y = y;
    p.final_state = final_state;
    p.log_decay = log_decay;
    const double ms = MedianMs([&] { Require(tessera::cuda::SsdScan(p, nullptr)); }, 3, 20);
    const int64_t chunks = (L + Q - 1) / Q;
    // CB (per group), intra (L∘CB)X, chunk states, state output: 2 flops per MAC,
    // causal halves counted as full tiles are computed (upper bound of useful work).
    const double flops = 2.0 * chunks *
                         (double(G) * Q * Q * N + double(H) * (Q * Q * P + 2.0 * Q * P * N));
    const double bytes = 4.0 * (2.0 * L * H * P + 2.0 * L * G * N + L * H);
    std::printf("SsdScan   L=%lld H=%lld P=%lld N=%lld G=%lld Q=%lld: %.3f ms  (%.1f TFLOP/s, "
                "%.0f GB/s of compulsory traffic)\n",
                (long long)L, (long long)H, (long long)P, (long long)N, (long long)G,
                (long long)Q, ms, flops / ms / 1e9, bytes / ms / 1e6);
  }

  {  // Attention: Hq=32, Hkv=8, D=128, causal, fp32.
    const int64_t Hq = 32, Hkv = 8, D = 128;
    tessera::AttentionParams p{L, L, Hq, Hkv, D};
    p.q = RandomDevice(L * Hq * D, -1.0f, 1.0f, 11);
    p.k = RandomDevice(L * Hkv * D, -1.0f, 1.0f, 12);
    p.v = RandomDevice(L * Hkv * D, -1.0f, 1.0f, 13);
    p.causal = true;
    p.scale = 0.08838834764831845f;
    p.out = RandomDevice(L * Hq * D, 0.0f, 1.0f, 14);
    p.lse = RandomDevice(L * Hq, 0.0f, 1.0f, 15);
    const double ms = MedianMs([&] { Require(tessera::cuda::Attention(p, nullptr)); }, 2, 10);
    const double flops = 4.0 * L * L * D * Hq / 2.0;  // causal: half of QKᵀ and PV
    std::printf("Attention L=%lld Hq=%lld Hkv=%lld D=%lld causal fp32: %.3f ms  (%.1f TFLOP/s)\n",
                (long long)L, (long long)Hq, (long long)Hkv, (long long)D, ms, flops / ms / 1e9);
  }
  return 0;
}
