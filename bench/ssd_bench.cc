// Times cuda::SsdScan with bf16 and with fp32 x, B, C at the nemotronh-8b
// Mamba layer (H 128 heads of P 64, state N 128, G 8 groups, chunk Q 128,
// zero initial state, D and final state and log_decay written) for each
// sequence length: CUDA events, warm-up runs, the median of timed repeats, on
// fresh random inputs per length (never zeros). bf16 is timed twice: the
// kernel SsdScan picks (wgmma on Hopper at this shape) and the mma.sync kernel
// (TESSERA_SSD_KERNEL=mma). Also prints how far each bf16 y lands from the
// fp32 y on the same inputs (relative L2), so a fast wrong kernel cannot pass
// unnoticed. bench/ssd_peer.py times mamba_ssm's Triton kernel at the same
// shapes in the same run and prints the ratios; it reads the "RESULT" lines
// this program prints.
// Usage: ssd_bench [L1,L2,...]   (default 4096,16384,65536)
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

#include "bench/cuda_bench_util.h"
#include "kernels/ssd_scan.h"

namespace {

using tessera::bench::Download;
using tessera::bench::MedianMs;
using tessera::bench::RandomHost;
using tessera::bench::RelativeL2;
using tessera::bench::Require;
using tessera::bench::Upload;

// The layer shape.
constexpr int64_t kHeads = 128, kHeadDim = 64, kStateSize = 128, kGroups = 8, kChunk = 128;

struct Timing {
  double bf16_ms, mma_ms, f32_ms;  // the default bf16 kernel, the mma.sync one, fp32
  double y_diff, state_diff, mma_y_diff;  // bf16 against fp32, relative L2
};

// The runs of one length: bf16 by the default kernel, bf16 by mma.sync, fp32.
enum Variant { kBf16 = 0, kBf16Mma = 1, kF32 = 2 };

Timing BenchLength(int64_t L) {
  const int64_t H = kHeads, P = kHeadDim, N = kStateSize, G = kGroups;
  const uint64_t seed = static_cast<uint64_t>(L) * 16;
  const std::vector<float> x = RandomHost(L * H * P, -1.0f, 1.0f, seed + 1);  // (L, H, P)
  const std::vector<float> B = RandomHost(L * G * N, -1.0f, 1.0f, seed + 2);  // (L, G, N)
  const std::vector<float> C = RandomHost(L * G * N, -1.0f, 1.0f, seed + 3);  // (L, G, N)
  const std::vector<float> dt = RandomHost(L * H, 0.01f, 0.2f, seed + 4);     // (L, H)
  const std::vector<float> A = RandomHost(H, -8.0f, -1.0f, seed + 5);         // (H)
  const std::vector<float> D = RandomHost(H, 0.5f, 1.5f, seed + 6);           // (H)
  auto* d_dt = static_cast<float*>(Upload(dt, false));
  auto* d_A = static_cast<float*>(Upload(A, false));
  auto* d_D = static_cast<float*>(Upload(D, false));
  // Outputs start as random garbage: every element must be written.
  auto* d_y = static_cast<float*>(Upload(RandomHost(L * H * P, 5.0f, 9.0f, seed + 7), false));
  auto* d_final = static_cast<float*>(Upload(RandomHost(H * P * N, 5.0f, 9.0f, seed + 8), false));
  auto* d_log_decay = static_cast<float*>(Upload(RandomHost(H, 5.0f, 9.0f, seed + 9), false));

  Timing timing{};
  std::vector<float> y[3], state[3];
  for (int variant : {kBf16, kBf16Mma, kF32}) {
    const bool bf16 = variant != kF32;
    if (variant == kBf16Mma) {
      setenv("TESSERA_SSD_KERNEL", "mma", 1);
    } else {
      unsetenv("TESSERA_SSD_KERNEL");
    }
    void* d_x = Upload(x, bf16);
    void* d_B = Upload(B, bf16);
    void* d_C = Upload(C, bf16);
    tessera::SsdScanParams p;
    p.seq_len = L;
    p.num_heads = H;
    p.head_dim = P;
    p.num_groups = G;
    p.state_size = N;
    p.chunk_size = kChunk;
    p.type = bf16 ? tessera::ElementType::kBF16 : tessera::ElementType::kF32;
    p.x = d_x;
    p.dt = d_dt;
    p.A = d_A;
    p.B = d_B;
    p.C = d_C;
    p.D = d_D;
    p.y = d_y;
    p.final_state = d_final;
    p.log_decay = d_log_decay;
    const int repeats = bf16 ? 20 : (L > 16384 ? 5 : 10);
    const double ms = MedianMs([&] { Require(tessera::cuda::SsdScan(p, nullptr)); }, 3, repeats);
    BENCH_CHECK(cudaGetLastError());
    (variant == kBf16 ? timing.bf16_ms : variant == kBf16Mma ? timing.mma_ms : timing.f32_ms) = ms;
    y[variant] = Download(d_y, L * H * P);
    state[variant] = Download(d_final, H * P * N);
    BENCH_CHECK(cudaFree(d_x));
    BENCH_CHECK(cudaFree(d_B));
    BENCH_CHECK(cudaFree(d_C));
  }
  unsetenv("TESSERA_SSD_KERNEL");
  timing.y_diff = RelativeL2(y[kBf16], y[kF32]);
  timing.state_diff = RelativeL2(state[kBf16], state[kF32]);
  timing.mma_y_diff = RelativeL2(y[kBf16Mma], y[kF32]);
  for (void* d : {static_cast<void*>(d_dt), static_cast<void*>(d_A), static_cast<void*>(d_D),
                  static_cast<void*>(d_y), static_cast<void*>(d_final),
                  static_cast<void*>(d_log_decay)}) {
    BENCH_CHECK(cudaFree(d));
  }
  return timing;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths = {4096, 16384, 65536};
  if (argc > 1) {
    lengths.clear();
    for (const char* s = argv[1]; *s != '\0';) {
      char* end = nullptr;
      lengths.push_back(std::strtoll(s, &end, 10));
      s = *end == ',' ? end + 1 : end;
    }
  }
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  // Keep the fp32 path's stream-ordered scratch in the pool between calls, as
  // an engine would, so the timings measure kernels rather than the allocator.
  cudaMemPool_t pool;
  BENCH_CHECK(cudaDeviceGetDefaultMemPool(&pool, 0));
  uint64_t keep = UINT64_MAX;
  BENCH_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));

  std::printf("SsdScan H=%lld P=%lld N=%lld G=%lld Q=%lld, zero h0, D, y fp32\n",
              (long long)kHeads, (long long)kHeadDim, (long long)kStateSize, (long long)kGroups,
              (long long)kChunk);
  std::printf("%8s %10s %10s %10s %12s %14s %14s %14s\n", "L", "bf16 ms", "mma ms", "fp32 ms",
              "bf16 GB/s", "y bf16-vs-f32", "h bf16-vs-f32", "y mma-vs-f32");
  for (int64_t L : lengths) {
    const Timing t = BenchLength(L);
    // Compulsory traffic of the bf16 scan: x, B, C (bf16), dt in; y, final state out.
    const double bytes = 2.0 * L * kHeads * kHeadDim + 2.0 * 2.0 * L * kGroups * kStateSize +
                         4.0 * L * kHeads + 4.0 * L * kHeads * kHeadDim +
                         4.0 * kHeads * kHeadDim * kStateSize;
    std::printf("%8lld %10.3f %10.3f %10.3f %12.0f %14.2e %14.2e %14.2e\n", (long long)L,
                t.bf16_ms, t.mma_ms, t.f32_ms, bytes / t.bf16_ms / 1e6, t.y_diff, t.state_diff,
                t.mma_y_diff);
    std::printf("RESULT L=%lld bf16_ms=%.4f f32_ms=%.4f y_rel_l2_bf16_vs_f32=%.3e mma_ms=%.4f\n",
                (long long)L, t.bf16_ms, t.f32_ms, t.y_diff, t.mma_ms);
    std::fflush(stdout);
  }
  return 0;
}
