// Times cuda::Attention in bf16 at a long-prefill shape (Hq 32, Hkv 8, D 128
// or --head-dim, causal, q_len = kv_len = L, positions 0) with CUDA events:
// warm-up runs, then the median of timed repeats, on random (never zero)
// inputs. Every kernel (TESSERA_ATTENTION_KERNEL; "default" leaves it unset,
// as the engine runs) is timed at each L; causal FLOPs = 4·L²·D·Hq / 2.
// Before timing, each tensor-core variant's output at the smallest L is
// compared with the CUDA-core kernel's (fp32 arithmetic on the same bf16
// inputs): a wrong variant shows there, not as a fast time.
// Usage: attention_bench [--kernels=default,inorder,pingpong] [--check-only]
//                        [--head-dim=128] [L ...]   (default L: 4096 16384 65536)
// Compare with bench/sdpa_bench.py (PyTorch SDPA, cuDNN and flash backends) in
// the same run.
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
#include "kernels/attention.h"

namespace {

using tessera::AttentionParams;
using tessera::ElementType;
using tessera::bench::MedianMs;
using tessera::bench::Require;
using tessera::bench::SelectAttentionKernel;
namespace cuda = tessera::cuda;

constexpr int64_t kHq = 32, kHkv = 8;
int64_t g_head_dim = 128;  // D, set by --head-dim

// A device array of `n` bf16 values uniform in [lo, hi) (xorshift, seeded).
uint16_t* RandomBf16Device(int64_t n, float lo, float hi, uint64_t seed) {
  return static_cast<uint16_t*>(tessera::bench::RandomDevice(n, lo, hi, seed, /*bf16=*/true));
}

struct Buffers {
  uint16_t *q, *k, *v;  // (L, Hq, D), (L, Hkv, D), (L, Hkv, D) bf16
  float *out, *lse;     // (L, Hq, D), (L, Hq)
};

AttentionParams Params(const Buffers& b, int64_t L) {
  AttentionParams p;
  p.q_len = p.kv_len = L;
  p.num_q_heads = kHq;
  p.num_kv_heads = kHkv;
  p.head_dim = g_head_dim;
  p.type = ElementType::kBF16;
  p.q = b.q;
  p.k = b.k;
  p.v = b.v;
  p.causal = true;
  p.scale = 1.0f / std::sqrt(static_cast<float>(g_head_dim));
  p.out = b.out;
  p.lse = b.lse;
  return p;
}

std::vector<float> Download(const float* d, int64_t n) {
  std::vector<float> host(n);
  BENCH_CHECK(cudaMemcpy(host.data(), d, sizeof(float) * n, cudaMemcpyDeviceToHost));
  return host;
}

// Runs `kernel` once at L with NaN-poisoned outputs and returns out and lse.
std::vector<float> RunOnce(const char* kernel, const Buffers& b, int64_t L,
                           std::vector<float>* lse) {
  SelectAttentionKernel(kernel);
  BENCH_CHECK(cudaMemset(b.out, 0xFF, sizeof(float) * L * kHq * g_head_dim));  // NaN
  BENCH_CHECK(cudaMemset(b.lse, 0xFF, sizeof(float) * L * kHq));
  Require(cuda::Attention(Params(b, L), nullptr));
  BENCH_CHECK(cudaDeviceSynchronize());
  *lse = Download(b.lse, L * kHq);
  return Download(b.out, L * kHq * g_head_dim);
}

// ||a - b|| / ||b||, or NaN if a holds a non-finite value.
double RelativeL2(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0.0, ref = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return NAN;
    err += (double{a[i]} - b[i]) * (double{a[i]} - b[i]);
    ref += double{b[i]} * b[i];
  }
  return std::sqrt(err / ref);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths;
  std::vector<std::string> flash_kernels = {"default", "inorder", "pingpong"};
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--kernels=", 0) == 0) {
      flash_kernels.clear();
      std::string list = arg.substr(10);
      for (size_t start = 0; start <= list.size();) {
        const size_t comma = std::min(list.find(',', start), list.size());
        if (comma > start) flash_kernels.push_back(list.substr(start, comma - start));
        start = comma + 1;
      }
    } else if (arg.rfind("--head-dim=", 0) == 0) {
      g_head_dim = std::atoll(arg.c_str() + 11);
    } else if (arg == "--check-only") {
      check_only = true;
    } else {
      lengths.push_back(std::atoll(argv[i]));
    }
  }
  if (lengths.empty()) lengths = {4096, 16384, 65536};
  const int64_t max_len = *std::max_element(lengths.begin(), lengths.end());
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs; Hq=%lld Hkv=%lld D=%lld causal bf16\n", prop.name,
              prop.multiProcessorCount, static_cast<long long>(kHq),
              static_cast<long long>(kHkv), static_cast<long long>(g_head_dim));

  Buffers b{};
  b.q = RandomBf16Device(max_len * kHq * g_head_dim, -2.0f, 2.0f, 1);
  b.k = RandomBf16Device(max_len * kHkv * g_head_dim, -2.0f, 2.0f, 2);
  b.v = RandomBf16Device(max_len * kHkv * g_head_dim, -1.0f, 1.0f, 3);
  const int64_t out_elems = max_len * kHq * g_head_dim;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&b.out), sizeof(float) * out_elems));
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&b.lse), sizeof(float) * max_len * kHq));

  {
    const int64_t L = *std::min_element(lengths.begin(), lengths.end());
    std::vector<float> want_lse, got_lse;
    const std::vector<float> want = RunOnce("ffma", b, L, &want_lse);
    for (const std::string& kernel : flash_kernels) {
      const std::vector<float> got = RunOnce(kernel.c_str(), b, L, &got_lse);
      std::printf("check L=%lld %-8s vs ffma: out relative L2 %.3g, lse relative L2 %.3g\n",
                  static_cast<long long>(L), kernel.c_str(), RelativeL2(got, want),
                  RelativeL2(got_lse, want_lse));
      std::fflush(stdout);
    }
  }
  if (check_only) return 0;

  struct Row {
    int64_t L;
    std::string kernel;
    double ms, tflops;
  };
  std::vector<Row> rows;
  for (int64_t L : lengths) {
    const double flops = 4.0 * static_cast<double>(L) * L * g_head_dim * kHq / 2.0;
    std::vector<std::string> kernels = flash_kernels;
    if (L <= 16384) kernels.push_back("ffma");  // 1.4 s a run at 64K
    for (const std::string& kernel : kernels) {
      SelectAttentionKernel(kernel);
      const AttentionParams p = Params(b, L);
      const bool slow = kernel == "ffma";
      const double ms = MedianMs([&] { Require(cuda::Attention(p, nullptr)); }, slow ? 1 : 3,
                                 slow ? 3 : 10);
      rows.push_back({L, kernel, ms, flops / ms / 1e9});
      std::printf("tessera %-8s L=%6lld: %9.3f ms  %6.1f TFLOP/s\n", kernel.c_str(),
                  static_cast<long long>(L), ms, flops / ms / 1e9);
      std::fflush(stdout);
    }
  }
  std::printf("\n| L | kernel | ms | TFLOP/s |\n|---|---|---|---|\n");
  for (const Row& r : rows) {
    std::printf("| %lld | tessera %s D%lld | %.3f | %.1f |\n", static_cast<long long>(r.L),
                r.kernel.c_str(), static_cast<long long>(g_head_dim), r.ms, r.tflops);
  }
  return 0;
}
