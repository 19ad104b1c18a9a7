// Times one mixture-of-experts layer of the nemotron-3-nano shape (H 2688,
// E 128 experts, top 6, I 1856, relu² experts, bf16 weights and x, sigmoid
// routing with a correction bias, routed_scaling_factor 2.5) through
// cuda::MoeRoute and cuda::MoeExperts, at prefill sizes and decode batches:
// CUDA events, warm-up runs, the median of timed repeats, fresh random data
// per size (never zeros). Beside it, the dense bf16 product of the same
// active FLOPs through cuda::Linear (cuBLAS): (T·k, H)·(H, I) then
// (T·k, I)·(I, H), so the ratio says what the routing, the permutation and
// the grouping cost over the same arithmetic in two big GEMMs. Before timing,
// the experts' output of a few tokens is checked against float64 on the same
// bf16 inputs (relative L2), so a fast wrong kernel cannot pass unnoticed.
// bench/moe_peer.py times PyTorch (torch._grouped_mm) at the same shapes in
// the same device run and prints the ratios; it reads the RESULT lines.
// Usage: moe_bench [T1,T2,...]   (default 1,8,64,16384,65536)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "bench/cuda_bench_util.h"
#include "kernels/linear.h"
#include "kernels/moe_experts.h"
#include "kernels/moe_route.h"

namespace {

using tessera::bench::Bf16Bits;
using tessera::bench::MedianMs;
using tessera::bench::Require;

// The layer shape.
constexpr int64_t kHidden = 2688, kExperts = 128, kTopK = 6, kInter = 1856;
constexpr float kScaling = 2.5f;

float FromBf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// `n` values uniform in [lo, hi) from xorshift streams seeded by `seed`, on all cores.
template <typename T>
std::vector<T> RandomHost(int64_t n, float lo, float hi, uint64_t seed) {
  std::vector<T> v(n);
  const int threads = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w) {
    pool.emplace_back([&, w] {
      uint64_t s = (seed * 0x9E3779B97F4A7C15ull) ^ (0xD1B54A32D192ED03ull * (w + 1));
      for (int64_t i = n * w / threads; i < n * (w + 1) / threads; ++i) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const float f = lo + (hi - lo) * static_cast<float>(s >> 40) / static_cast<float>(1ull << 24);
        if constexpr (sizeof(T) == 2) {
          v[i] = Bf16Bits(f);
        } else {
          v[i] = f;
        }
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return v;
}

template <typename T>
T* Upload(const std::vector<T>& host) {
  T* d = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), sizeof(T) * std::max<size_t>(1, host.size())));
  BENCH_CHECK(cudaMemcpy(d, host.data(), sizeof(T) * host.size(), cudaMemcpyHostToDevice));
  return d;
}

template <typename T>
std::vector<T> Download(const T* d, int64_t n) {
  std::vector<T> host(n);
  BENCH_CHECK(cudaMemcpy(host.data(), d, sizeof(T) * n, cudaMemcpyDeviceToHost));
  return host;
}

struct Weights {
  std::vector<uint16_t> up, down;  // host copies: (E, I, H), (E, H, I)
  uint16_t* d_up = nullptr;
  uint16_t* d_down = nullptr;
};

// Relative L2 of what the experts added to y for `tokens` rows, against
// float64 on the same bf16 inputs (the act rounded to bf16 as the kernel must).
double CheckTokens(const Weights& w, const std::vector<uint16_t>& x, const std::vector<int32_t>& ids,
                   const std::vector<float>& weights, const std::vector<float>& added, const std::vector<int64_t>& rows) {
  double err2 = 0.0, ref2 = 0.0;
  std::vector<double> act(kInter);
  for (int64_t t : rows) {
    std::vector<double> y(kHidden, 0.0);
    for (int64_t j = 0; j < kTopK; ++j) {
      const int64_t e = ids[t * kTopK + j];
      for (int64_t i = 0; i < kInter; ++i) {
        const uint16_t* u = &w.up[(e * kInter + i) * kHidden];
        double h = 0.0;
        for (int64_t c = 0; c < kHidden; ++c) h += double{FromBf16(u[c])} * FromBf16(x[t * kHidden + c]);
        const double r = h > 0.0 ? h * h : 0.0;
        act[i] = FromBf16(Bf16Bits(static_cast<float>(r)));
      }
      for (int64_t o = 0; o < kHidden; ++o) {
        const uint16_t* d = &w.down[(e * kHidden + o) * kInter];
        double s = 0.0;
        for (int64_t i = 0; i < kInter; ++i) s += double{FromBf16(d[i])} * act[i];
        y[o] += weights[t * kTopK + j] * s;
      }
    }
    for (int64_t o = 0; o < kHidden; ++o) {
      const double diff = added[t * kHidden + o] - y[o];
      if (!std::isfinite(added[t * kHidden + o])) return INFINITY;
      err2 += diff * diff;
      ref2 += y[o] * y[o];
    }
  }
  return std::sqrt(err2 / ref2);
}

struct Timing {
  double route_ms, experts_ms, dense_ms, check;
};

Timing BenchTokens(int64_t T, const Weights& w, void* workspace) {
  const uint64_t seed = static_cast<uint64_t>(T) * 97 + 11;
  const int64_t pairs = T * kTopK;
  const std::vector<uint16_t> x = RandomHost<uint16_t>(T * kHidden, -1.0f, 1.0f, seed + 1);  // (T, H)
  const std::vector<float> logits = RandomHost<float>(T * kExperts, -4.0f, 4.0f, seed + 2);  // (T, E)
  const std::vector<float> bias = RandomHost<float>(kExperts, -0.05f, 0.05f, seed + 3);       // (E)
  uint16_t* d_x = Upload(x);
  float* d_logits = Upload(logits);
  float* d_bias = Upload(bias);
  int32_t* d_ids = Upload(std::vector<int32_t>(pairs, -1));
  float* d_weights = Upload(RandomHost<float>(pairs, 5.0f, 9.0f, seed + 4));
  float* d_y = Upload(std::vector<float>(T * kHidden, 0.0f));

  tessera::MoeRouteParams route;
  route.tokens = T;
  route.experts = kExperts;
  route.top_k = kTopK;
  route.kind = tessera::MoeRouteKind::kSigmoidBiased;
  route.norm_topk_prob = true;
  route.routed_scaling_factor = kScaling;
  route.logits = d_logits;
  route.correction_bias = d_bias;
  route.expert_ids = d_ids;
  route.expert_weights = d_weights;

  tessera::MoeExpertsParams p;
  p.tokens = T;
  p.hidden = kHidden;
  p.experts = kExperts;
  p.top_k = kTopK;
  p.intermediate = kInter;
  p.activation = tessera::MoeExpertActivation::kRelu2;
  p.type = tessera::ElementType::kBF16;
  p.x = d_x;
  p.expert_ids = d_ids;
  p.expert_weights = d_weights;
  p.up = w.d_up;
  p.down = w.d_down;
  p.y = d_y;
  p.workspace = workspace;

  // Correctness first: y starts at zero, so y is what the experts added.
  Require(tessera::cuda::MoeRoute(route, nullptr));
  Require(tessera::cuda::MoeExperts(p, nullptr));
  BENCH_CHECK(cudaDeviceSynchronize());
  Timing timing{};
  {
    const std::vector<int32_t> ids = Download(d_ids, pairs);
    const std::vector<float> weights = Download(d_weights, pairs);
    const std::vector<float> added = Download(d_y, T * kHidden);
    std::vector<int64_t> rows;
    for (int64_t t : {int64_t{0}, T / 3, T / 2 + 1, T - 1}) {
      if (t < T && std::find(rows.begin(), rows.end(), t) == rows.end()) rows.push_back(t);
    }
    timing.check = CheckTokens(w, x, ids, weights, added, rows);
    for (float v : added) {
      if (!std::isfinite(v)) timing.check = INFINITY;
    }
  }

  const int warmup = 3, repeats = T >= 16384 ? 10 : 50;
  timing.route_ms = MedianMs([&] { Require(tessera::cuda::MoeRoute(route, nullptr)); }, warmup, repeats);
  timing.experts_ms = MedianMs([&] { Require(tessera::cuda::MoeExperts(p, nullptr)); }, warmup, repeats);

  // Dense: the same active FLOPs as two cuBLAS GEMMs on random (T·k, H) and (T·k, I) operands.
  {
    uint16_t* d_a1 = Upload(RandomHost<uint16_t>(pairs * kHidden, -1.0f, 1.0f, seed + 5));  // (T·k, H)
    uint16_t* d_a2 = Upload(RandomHost<uint16_t>(pairs * kInter, 0.0f, 1.0f, seed + 6));    // (T·k, I)
    float* d_y1 = nullptr;
    float* d_y2 = nullptr;
    BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&d_y1), sizeof(float) * pairs * kInter));   // (T·k, I)
    BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&d_y2), sizeof(float) * pairs * kHidden));  // (T·k, H)
    tessera::LinearParams l1;
    l1.rows = pairs;
    l1.in_features = kHidden;
    l1.out_features = kInter;
    l1.type = tessera::ElementType::kBF16;
    l1.x = d_a1;
    l1.weight = w.d_up;  // expert 0's (I, H)
    l1.y = d_y1;
    tessera::LinearParams l2 = l1;
    l2.in_features = kInter;
    l2.out_features = kHidden;
    l2.x = d_a2;
    l2.weight = w.d_down;  // expert 0's (H, I)
    l2.y = d_y2;
    timing.dense_ms = MedianMs(
        [&] {
          Require(tessera::cuda::Linear(l1, nullptr));
          Require(tessera::cuda::Linear(l2, nullptr));
        },
        warmup, repeats);
    for (void* d : {static_cast<void*>(d_a1), static_cast<void*>(d_a2), static_cast<void*>(d_y1),
                    static_cast<void*>(d_y2)}) {
      BENCH_CHECK(cudaFree(d));
    }
  }
  for (void* d : {static_cast<void*>(d_x), static_cast<void*>(d_logits), static_cast<void*>(d_bias),
                  static_cast<void*>(d_ids), static_cast<void*>(d_weights), static_cast<void*>(d_y)}) {
    BENCH_CHECK(cudaFree(d));
  }
  return timing;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> sizes = {1, 8, 64, 16384, 65536};
  if (argc > 1) {
    sizes.clear();
    for (const char* s = argv[1]; *s != '\0';) {
      char* end = nullptr;
      sizes.push_back(std::strtoll(s, &end, 10));
      s = *end == ',' ? end + 1 : end;
    }
  }
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  const char* forced = std::getenv("TESSERA_MOE_KERNEL");
  std::printf("MoE layer H=%lld E=%lld k=%lld I=%lld relu2 bf16%s\n", (long long)kHidden, (long long)kExperts,
              (long long)kTopK, (long long)kInter, forced != nullptr ? " (TESSERA_MOE_KERNEL set)" : "");

  Weights w;
  w.up = RandomHost<uint16_t>(kExperts * kInter * kHidden, -0.03f, 0.03f, 1);    // (E, I, H)
  w.down = RandomHost<uint16_t>(kExperts * kHidden * kInter, -0.03f, 0.03f, 2);  // (E, H, I)
  w.d_up = Upload(w.up);
  w.d_down = Upload(w.down);
  tessera::MoeExpertsParams largest;
  largest.tokens = *std::max_element(sizes.begin(), sizes.end());
  largest.hidden = kHidden;
  largest.experts = kExperts;
  largest.top_k = kTopK;
  largest.intermediate = kInter;
  largest.type = tessera::ElementType::kBF16;
  const int64_t workspace_bytes = tessera::MoeExpertsWorkspaceBytes(largest);
  void* workspace = nullptr;
  BENCH_CHECK(cudaMalloc(&workspace, workspace_bytes));
  std::printf("workspace for T=%lld: %.2f GB\n", (long long)largest.tokens, workspace_bytes / 1e9);

  std::printf("%7s %9s %10s %9s %10s %9s %11s %10s\n", "T", "route ms", "experts ms", "TFLOP/s", "dense ms",
              "TFLOP/s", "vs dense", "check");
  for (int64_t T : sizes) {
    const Timing t = BenchTokens(T, w, workspace);
    const double flops = 2.0 * T * kTopK * (2.0 * kHidden * kInter);  // active: up and down
    std::printf("%7lld %9.4f %10.4f %9.1f %10.4f %9.1f %10.2fx %10.2e\n", (long long)T, t.route_ms, t.experts_ms,
                flops / t.experts_ms / 1e9, t.dense_ms, flops / t.dense_ms / 1e9, t.experts_ms / t.dense_ms, t.check);
    std::printf("RESULT T=%lld route_ms=%.5f experts_ms=%.5f dense_ms=%.5f check=%.3e\n", (long long)T, t.route_ms,
                t.experts_ms, t.dense_ms, t.check);
    std::fflush(stdout);
  }
  return 0;
}
