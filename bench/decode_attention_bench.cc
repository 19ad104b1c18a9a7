// Times cuda::Attention at decode shapes against the memory floor: bf16 K/V,
// Hq 32 / Hkv 8 / D 128 (the 8B model's attention layer), causal, the queries
// the last q_len positions of kv_len keys (one request's KV cache), q_len 1, 8
// and 16 (a batch of decode queries: split-KV reads the K/V once for all of
// them). Each call runs as the engine runs it (default kernel choice, the
// workspace cuda::AttentionWorkspaceBytes asks for) and again on the kernel it
// replaces (TESSERA_ATTENTION_KERNEL=--old, the Hopper flash kernel's default
// schedule for D 128). The reference is a device-to-device cudaMemcpy of the
// same K/V bytes in the same process: copy GB/s counts its reads and writes
// (2 × bytes / time), attention GB/s the K/V bytes read, and "of copy" is
// their ratio.
// Timing: kCalls consecutive calls captured in one CUDA graph, each reading
// the next window of a K/V buffer of at least 8× the L2 (so no call finds its
// K/V in L2), the replay timed with CUDA events; the median of kReplays
// replays after a warm-up, over kCalls, is the time of one call on the GPU.
// The copies are timed the same way but enqueued, not captured (a graph's
// memcpy nodes run slower). "eager" is one call timed alone (host path and
// launches included), the engine's cost while decode steps are not graphs. Data: a 16 MiB random
// pattern per tensor, repeated to fill it. Before timing, split-KV's answer at
// the smallest kv_len is compared with the CUDA-core kernel's (fp32
// arithmetic on the same bf16 inputs).
// Usage: decode_attention_bench [--q-lens=1,8,16] [--old=pingpong] [kv_len ...]
//        (default kv_len: 4096 16384 65536 262144 1048576)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench/cuda_bench_util.h"
#include "bench/cuda_graph_timing.h"
#include "kernels/attention.h"

namespace {

using tessera::AttentionParams;
using tessera::ElementType;
using tessera::bench::Bf16Bits;
using tessera::bench::Download;
using tessera::bench::MedianPerCall;
using tessera::bench::RandomHost;
using tessera::bench::RelativeL2;
using tessera::bench::Require;
using tessera::bench::SelectAttentionKernel;
namespace cuda = tessera::cuda;

constexpr int64_t kHq = 32, kHkv = 8, kD = 128;
constexpr int64_t kMaxQueryRows = 16;
constexpr int64_t kPatternElements = int64_t{8} << 20;  // 16 MiB of bf16
constexpr int kCalls = 16;   // per graph
constexpr int kReplays = 7;  // timed, after one warm-up

// `n` bf16 values on the device: a random pattern in [lo, hi) repeated.
uint16_t* RandomBf16Device(int64_t n, float lo, float hi, uint64_t seed) {
  const int64_t pattern_n = std::min(n, kPatternElements);
  const std::vector<float> values = RandomHost(pattern_n, lo, hi, seed);
  std::vector<uint16_t> bits(pattern_n);
  for (int64_t i = 0; i < pattern_n; ++i) bits[i] = Bf16Bits(values[i]);
  uint16_t* d = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), sizeof(uint16_t) * n));
  BENCH_CHECK(cudaMemcpy(d, bits.data(), sizeof(uint16_t) * pattern_n, cudaMemcpyHostToDevice));
  for (int64_t at = pattern_n; at < n; at += pattern_n) {
    BENCH_CHECK(cudaMemcpy(d + at, d, sizeof(uint16_t) * std::min(pattern_n, n - at),
                           cudaMemcpyDeviceToDevice));
  }
  return d;
}

struct Buffers {
  uint16_t* q;        // (16, Hq, D) bf16
  uint16_t *k, *v;    // (buffer_keys, Hkv, D) bf16: windows of kv_len keys
  int64_t buffer_keys;
  float *out, *lse;   // (16, Hq, D), (16, Hq)
  void* copy_to;      // one window of K and V, the copy's destination
  cudaStream_t stream;
};

// Windows of `kv_len` keys the K/V buffers hold.
int64_t Windows(const Buffers& b, int64_t kv_len) { return std::max<int64_t>(1, b.buffer_keys / kv_len); }

// The call on window `window` of the K/V buffers.
AttentionParams Params(const Buffers& b, int64_t kv_len, int64_t q_len, int64_t window) {
  const int64_t offset = window % Windows(b, kv_len) * kv_len * kHkv * kD;
  AttentionParams p;
  p.q_len = q_len;
  p.kv_len = kv_len;
  p.num_q_heads = kHq;
  p.num_kv_heads = kHkv;
  p.head_dim = kD;
  p.type = ElementType::kBF16;
  p.q = b.q;
  p.k = b.k + offset;
  p.v = b.v + offset;
  p.q_position0 = kv_len - q_len;
  p.causal = true;
  p.scale = 1.0f / std::sqrt(static_cast<float>(kD));
  p.out = b.out;
  p.lse = b.lse;
  return p;
}

// The kernel choice's calls on (kv_len, q_len), window by window, with the
// workspace they ask for (one, reused: calls on a stream run in order).
class AttentionCalls {
 public:
  AttentionCalls(const Buffers& b, int64_t kv_len, int64_t q_len) : b_(b), kv_len_(kv_len), q_len_(q_len) {
    workspace_bytes_ = cuda::AttentionWorkspaceBytes(Params(b, kv_len, q_len, 0));
    if (workspace_bytes_ > 0) BENCH_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
  }
  AttentionCalls(const AttentionCalls&) = delete;
  AttentionCalls& operator=(const AttentionCalls&) = delete;
  ~AttentionCalls() { cudaFree(workspace_); }
  void operator()(int64_t window) const {
    AttentionParams p = Params(b_, kv_len_, q_len_, window);
    p.workspace = workspace_;
    p.workspace_bytes = workspace_bytes_;
    Require(cuda::Attention(p, b_.stream));
  }
  int64_t workspace_bytes() const { return workspace_bytes_; }

 private:
  const Buffers& b_;
  int64_t kv_len_, q_len_;
  void* workspace_ = nullptr;
  int64_t workspace_bytes_ = 0;
};

// One call(n) on the GPU: kCalls calls (n = 0, 1, ...) captured in one CUDA graph, replayed.
double GraphMs(const Buffers& b, const std::function<void(int64_t)>& call) {
  return tessera::bench::GraphMs(b.stream, call, kCalls, kReplays);
}

// One call(n) enqueued kCalls at a time (the copy: graphs run memcpy nodes on
// the copy engines, slower than the runtime's eager device-to-device copy).
double StreamMs(const Buffers& b, const std::function<void(int64_t)>& call) {
  int64_t n = 0;
  return MedianPerCall(b.stream, [&] {
    for (int i = 0; i < kCalls; ++i) call(n++);
  }, kCalls, kReplays);
}

// One call(n) timed alone: host path and launches included.
double EagerMs(const Buffers& b, const std::function<void(int64_t)>& call) {
  int64_t n = 0;
  return MedianPerCall(b.stream, [&] { call(n++); }, 1, kReplays);
}

// out and lse of `kernel` on (kv_len, q_len), outputs NaN-poisoned first.
std::vector<float> RunOnce(const std::string& kernel, const Buffers& b, int64_t kv_len, int64_t q_len,
                           std::vector<float>* lse) {
  SelectAttentionKernel(kernel);
  BENCH_CHECK(cudaMemset(b.out, 0xFF, sizeof(float) * q_len * kHq * kD));
  BENCH_CHECK(cudaMemset(b.lse, 0xFF, sizeof(float) * q_len * kHq));
  {
    const AttentionCalls call(b, kv_len, q_len);
    call(0);
    BENCH_CHECK(cudaStreamSynchronize(b.stream));
  }
  *lse = Download(b.lse, q_len * kHq);
  return Download(b.out, q_len * kHq * kD);
}

std::vector<int64_t> ParseList(const std::string& list) {
  std::vector<int64_t> values;
  for (size_t start = 0; start < list.size();) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) values.push_back(std::atoll(list.substr(start, comma - start).c_str()));
    start = comma + 1;
  }
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths, q_lens = {1, 8, 16};
  std::string old_kernel = "pingpong";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--q-lens=", 0) == 0) {
      q_lens = ParseList(arg.substr(9));
    } else if (arg.rfind("--old=", 0) == 0) {
      old_kernel = arg.substr(6);
    } else {
      lengths.push_back(std::atoll(argv[i]));
    }
  }
  if (lengths.empty()) lengths = {4096, 16384, 65536, 262144, 1048576};
  for (int64_t q_len : q_lens) {
    if (q_len < 1 || q_len > kMaxQueryRows) {
      std::fprintf(stderr, "q_len must be 1..%lld. Given: %lld\n", static_cast<long long>(kMaxQueryRows),
                   static_cast<long long>(q_len));
      return 1;
    }
  }
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MiB; Hq=%lld Hkv=%lld D=%lld bf16 K/V, causal decode\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, static_cast<long long>(kHq),
              static_cast<long long>(kHkv), static_cast<long long>(kD));

  const int64_t key_bytes = 2 * kHkv * kD * int64_t{sizeof(uint16_t)};  // K and V of one key
  const int64_t max_len = *std::max_element(lengths.begin(), lengths.end());
  Buffers b{};
  b.buffer_keys = std::max(max_len, 8 * int64_t{prop.l2CacheSize} / key_bytes);
  b.q = RandomBf16Device(kMaxQueryRows * kHq * kD, -2.0f, 2.0f, 1);
  b.k = RandomBf16Device(b.buffer_keys * kHkv * kD, -2.0f, 2.0f, 2);
  b.v = RandomBf16Device(b.buffer_keys * kHkv * kD, -1.0f, 1.0f, 3);
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&b.out), sizeof(float) * kMaxQueryRows * kHq * kD));
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&b.lse), sizeof(float) * kMaxQueryRows * kHq));
  BENCH_CHECK(cudaMalloc(&b.copy_to, max_len * key_bytes));
  BENCH_CHECK(cudaStreamCreateWithFlags(&b.stream, cudaStreamNonBlocking));

  {
    const int64_t L = *std::min_element(lengths.begin(), lengths.end());
    for (int64_t q_len : q_lens) {
      std::vector<float> want_lse, got_lse;
      const std::vector<float> want = RunOnce("ffma", b, L, q_len, &want_lse);
      const std::vector<float> got = RunOnce("splitkv", b, L, q_len, &got_lse);
      std::printf("check kv_len=%lld q_len=%lld split-KV vs ffma: out relative L2 %.3g, lse %.3g\n",
                  static_cast<long long>(L), static_cast<long long>(q_len), RelativeL2(got, want),
                  RelativeL2(got_lse, want_lse));
    }
    std::fflush(stdout);
  }

  struct Row {
    int64_t L, q_len;
    double ms, gbps, copy_gbps, eager_ms, old_ms;
  };
  std::vector<Row> rows;
  for (int64_t L : lengths) {
    const int64_t kv_bytes = L * key_bytes;
    const int64_t half = kv_bytes / 2;
    const double copy_ms = StreamMs(b, [&](int64_t n) {
      const int64_t offset = n % Windows(b, L) * half;  // bytes
      BENCH_CHECK(cudaMemcpyAsync(b.copy_to, reinterpret_cast<char*>(b.k) + offset, half,
                                  cudaMemcpyDeviceToDevice, b.stream));
      BENCH_CHECK(cudaMemcpyAsync(static_cast<char*>(b.copy_to) + half, reinterpret_cast<char*>(b.v) + offset,
                                  half, cudaMemcpyDeviceToDevice, b.stream));
    });
    const double copy_gbps = 2.0 * kv_bytes / copy_ms / 1e6;
    for (int64_t q_len : q_lens) {
      SelectAttentionKernel("default");
      const AttentionCalls split_kv(b, L, q_len);
      if (split_kv.workspace_bytes() == 0) {
        std::printf("note: kv_len=%lld q_len=%lld runs without a workspace (one split, or not split-KV)\n",
                    static_cast<long long>(L), static_cast<long long>(q_len));
      }
      const double ms = GraphMs(b, [&](int64_t n) { split_kv(n); });
      const double eager_ms = EagerMs(b, [&](int64_t n) { split_kv(n); });
      SelectAttentionKernel(old_kernel);
      const AttentionCalls old(b, L, q_len);
      const double old_ms = GraphMs(b, [&](int64_t n) { old(n); });
      SelectAttentionKernel("default");
      const double gbps = kv_bytes / ms / 1e6;
      rows.push_back({L, q_len, ms, gbps, copy_gbps, eager_ms, old_ms});
      std::printf("kv_len=%8lld q_len=%2lld: split-KV %8.4f ms %5.0f GB/s (%5.1f%% of copy %4.0f GB/s), "
                  "eager %8.4f ms; %s %8.3f ms\n",
                  static_cast<long long>(L), static_cast<long long>(q_len), ms, gbps, 100.0 * gbps / copy_gbps,
                  copy_gbps, eager_ms, old_kernel.c_str(), old_ms);
      std::fflush(stdout);
    }
  }
  std::printf("\n| kv_len | q_len | split-KV ms | K/V GB/s | of copy | copy GB/s | eager ms | %s ms | "
              "%s / split-KV |\n",
              old_kernel.c_str(), old_kernel.c_str());
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    std::printf("| %lld | %lld | %.4f | %.0f | %.0f%% | %.0f | %.4f | %.3f | %.1f× |\n",
                static_cast<long long>(r.L), static_cast<long long>(r.q_len), r.ms, r.gbps,
                100.0 * r.gbps / r.copy_gbps, r.copy_gbps, r.eager_ms, r.old_ms, r.old_ms / r.ms);
  }
  return 0;
}
