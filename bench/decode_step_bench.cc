// Times the batched decode-step kernels against the memory floor, each on the
// shapes of the 8B model (nemotronh-8b: attention Hq 32 / Hkv 8 / D 128 bf16;
// Mamba H 128, P 64, N 128, G 8, conv width 4 over C = 10240 channels):
//   DecodeAttention at batch 1 × 64K and 1M keys, batch 8 and 32 × 4K and 16K
//     (every request its own K/V allocation, all the same length);
//   SsdStep at batch 1 and 32 (per-request states, x/B/C read from the
//     conv-output rows, bf16 raw dt with the fused softplus);
//   ConvStep at batch 1 and 32 (bf16 xBC columns of in_proj's rows, fp32 out);
//   Linear at 1 and 8 rows on every projection shape of a decode step (bf16
//     W and x, fp32 y): the GEMV of cuda::Linear in its default
//     configuration and in the fastest of its others, and the cuBLAS GemmEx
//     call (what cuda::Linear runs from kLinearGemvCublasFeatures features on).
// GB/s counts the bytes an op must move (attention: K and V read; SsdStep:
// states read and written; ConvStep: states read and written, x read, out
// written), and "of copy" divides it by a device-to-device cudaMemcpy's
// GB/s on the same number of bytes (the copy's reads and writes: 2 × bytes /
// time), as bench/decode_attention_bench does.
// Timing: kCalls consecutive calls captured in one CUDA graph (how decode
// steps run), each on the next window of buffers of at least 8× the L2 (so
// no call finds its operands in L2), the replay
// timed with CUDA events; the median of kReplays replays after a warm-up,
// over kCalls. Data: fresh random values (a 16 MiB pattern repeated). Before
// timing, each op's answer on the first window is checked against a second
// run of the same op (attention: the plain CUDA-core kernel).
// Linear's bytes: W read once (x and y are a few KB).
// Usage: decode_step_bench [attention|ssd|conv|linear ...] (default: all four)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bench/cuda_bench_util.h"
#include "bench/cuda_graph_timing.h"
#include "kernels/conv_step.h"
#include "kernels/cuda/decode_attention.h"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/linear_gemv.h"
#include "kernels/decode_attention.h"
#include "kernels/linear.h"
#include "kernels/ssd_step.h"

namespace {

using tessera::ConvStepParams;
using tessera::DecodeAttentionParams;
using tessera::ElementType;
using tessera::LinearParams;
using tessera::SsdStepParams;
using tessera::bench::Download;
using tessera::bench::RandomHost;
using tessera::bench::RelativeL2;
using tessera::bench::Require;
namespace cuda = tessera::cuda;

constexpr int64_t kHq = 32, kHkv = 8, kD = 128;                    // attention
constexpr int64_t kH = 128, kP = 64, kN = 128, kG = 8;  // Mamba
constexpr int64_t kConvChannels = kH * kP + 2 * kG * kN;           // 10240
constexpr int64_t kConvWidth = 4;
constexpr int64_t kInProjWidth = 2 * kH * kP + 2 * kG * kN + kH;  // [z | xBC | dt]
constexpr int64_t kPatternBytes = int64_t{16} << 20;
constexpr int kCalls = 16;   // per graph
constexpr int kReplays = 7;  // timed, after one warm-up

cudaStream_t g_stream = nullptr;

// `bytes` of random bf16 values in [lo, hi) on the device (a pattern repeated).
void* RandomBf16(int64_t bytes, float lo, float hi, uint64_t seed) {
  const int64_t pattern = std::min(bytes, kPatternBytes) / 2;
  const std::vector<float> values = RandomHost(pattern, lo, hi, seed);
  std::vector<uint16_t> bits(pattern);
  for (int64_t i = 0; i < pattern; ++i) bits[i] = tessera::bench::Bf16Bits(values[i]);
  char* d = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), bytes));
  BENCH_CHECK(cudaMemcpy(d, bits.data(), 2 * pattern, cudaMemcpyHostToDevice));
  for (int64_t at = 2 * pattern; at < bytes; at += 2 * pattern) {
    BENCH_CHECK(cudaMemcpy(d + at, d, std::min(2 * pattern, bytes - at), cudaMemcpyDeviceToDevice));
  }
  return d;
}

// `n` random fp32 values in [lo, hi) on the device (a pattern repeated).
float* RandomF32(int64_t n, float lo, float hi, uint64_t seed) {
  const int64_t pattern = std::min(n, kPatternBytes / 4);
  const std::vector<float> values = RandomHost(pattern, lo, hi, seed);
  float* d = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), sizeof(float) * n));
  BENCH_CHECK(cudaMemcpy(d, values.data(), sizeof(float) * pattern, cudaMemcpyHostToDevice));
  for (int64_t at = pattern; at < n; at += pattern) {
    BENCH_CHECK(cudaMemcpy(d + at, d, sizeof(float) * std::min(pattern, n - at), cudaMemcpyDeviceToDevice));
  }
  return d;
}

template <typename T>
T* ToDevice(const std::vector<T>& host) {
  T* d = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), sizeof(T) * host.size()));
  BENCH_CHECK(cudaMemcpy(d, host.data(), sizeof(T) * host.size(), cudaMemcpyHostToDevice));
  return d;
}

// One call(n) on the GPU: kCalls calls captured in one graph, replayed.
double GraphMs(const std::function<void(int64_t)>& call) {
  return tessera::bench::GraphMs(g_stream, call, kCalls, kReplays);
}

// A device-to-device copy of `bytes` (enqueued: graphs run memcpy nodes slower),
// from windows of a buffer of at least 8× the L2: copy GB/s (reads and writes).
double CopyGbps(int64_t bytes, int64_t l2_bytes) {
  const int64_t windows = std::max<int64_t>(2, 8 * l2_bytes / bytes + 1);
  char *from = nullptr, *to = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&from), windows * bytes));
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&to), bytes));
  BENCH_CHECK(cudaMemset(from, 1, windows * bytes));
  int64_t n = 0;
  const double ms = tessera::bench::MedianPerCall(g_stream, [&] {
    for (int i = 0; i < kCalls; ++i, ++n) {
      BENCH_CHECK(cudaMemcpyAsync(to, from + n % windows * bytes, bytes, cudaMemcpyDeviceToDevice, g_stream));
    }
  }, kCalls, kReplays);
  BENCH_CHECK(cudaFree(from));
  BENCH_CHECK(cudaFree(to));
  return 2.0 * bytes / ms / 1e6;
}

struct Row {
  std::string op;
  int64_t batch, len;
  double ms, gbps, copy_gbps;
};
std::vector<Row> g_rows;

void Report(const std::string& op, int64_t batch, int64_t len, double ms, int64_t bytes, int64_t l2_bytes) {
  const double gbps = bytes / ms / 1e6, copy = CopyGbps(bytes, l2_bytes);
  g_rows.push_back({op, batch, len, ms, gbps, copy});
  std::printf("%-16s batch %3lld len %8lld: %8.4f ms %6.0f GB/s (%5.1f%% of copy %4.0f GB/s)\n", op.c_str(),
              static_cast<long long>(batch), static_cast<long long>(len), ms, gbps, 100.0 * gbps / copy, copy);
  std::fflush(stdout);
}

// ------------------------------------------------------------- attention

void BenchAttention(int64_t batch, int64_t len, int64_t l2_bytes) {
  const int64_t kv_bytes = len * kHkv * kD * 2;  // one request's K (or V), bf16
  const int64_t windows = std::max<int64_t>(1, 8 * l2_bytes / (2 * batch * kv_bytes) + 1);
  char* k = static_cast<char*>(RandomBf16(windows * batch * kv_bytes, -2.0f, 2.0f, 2));
  char* v = static_cast<char*>(RandomBf16(windows * batch * kv_bytes, -1.0f, 1.0f, 3));
  void* q = RandomBf16(batch * kHq * kD * 2, -2.0f, 2.0f, 1);
  std::vector<const void*> k_ptrs, v_ptrs;  // (windows, batch)
  for (int64_t w = 0; w < windows; ++w) {
    for (int64_t r = 0; r < batch; ++r) {  // requests reversed: their caches are not in order
      k_ptrs.push_back(k + (w * batch + batch - 1 - r) * kv_bytes);
      v_ptrs.push_back(v + (w * batch + batch - 1 - r) * kv_bytes);
    }
  }
  const void** d_k = ToDevice(k_ptrs);
  const void** d_v = ToDevice(v_ptrs);
  int32_t* d_lens = ToDevice(std::vector<int32_t>(batch, static_cast<int32_t>(len)));
  float *out = nullptr, *lse = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&out), sizeof(float) * batch * kHq * kD));
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&lse), sizeof(float) * batch * kHq));
  DecodeAttentionParams p;
  p.batch = batch;
  p.num_q_heads = kHq;
  p.num_kv_heads = kHkv;
  p.head_dim = kD;
  p.type = ElementType::kBF16;
  p.q = q;
  p.k = d_k;
  p.v = d_v;
  p.kv_lens = d_lens;
  p.scale = 1.0f / std::sqrt(static_cast<float>(kD));
  p.out = out;
  p.lse = lse;
  p.workspace_bytes = cuda::DecodeAttentionWorkspaceBytes(p);
  if (p.workspace_bytes > 0) BENCH_CHECK(cudaMalloc(&p.workspace, p.workspace_bytes));

  // The answer against the plain kernel's (fp32 arithmetic on the same bf16 inputs).
  if (len <= 65536) {
    Require(cuda::DecodeAttention(p, g_stream));
    BENCH_CHECK(cudaStreamSynchronize(g_stream));
    const std::vector<float> got = Download(out, batch * kHq * kD);
    BENCH_CHECK(tessera::cuda_decode::LaunchDecodeAttentionFfma(p, g_stream));
    BENCH_CHECK(cudaStreamSynchronize(g_stream));
    std::printf("check batch %lld len %lld: split-KV vs plain kernel, out relative L2 %.3g\n",
                static_cast<long long>(batch), static_cast<long long>(len),
                RelativeL2(got, Download(out, batch * kHq * kD)));
  }
  const double ms = GraphMs([&](int64_t n) {
    DecodeAttentionParams call = p;
    call.k = d_k + n % windows * batch;
    call.v = d_v + n % windows * batch;
    Require(cuda::DecodeAttention(call, g_stream));
  });
  Report("DecodeAttention", batch, len, ms, 2 * batch * kv_bytes, l2_bytes);
  for (void* ptr : {static_cast<void*>(k), static_cast<void*>(v), q, static_cast<void*>(d_k),
                    static_cast<void*>(d_v), static_cast<void*>(d_lens), static_cast<void*>(out),
                    static_cast<void*>(lse), p.workspace}) {
    BENCH_CHECK(cudaFree(ptr));
  }
}

// ------------------------------------------------------------ Mamba steps

// Windows of `batch` states each (`state_floats` floats a state) over a pool
// of at least 8× the L2: the pointer array of window w at arrays + w · batch.
struct StatePool {
  float* pool = nullptr;
  float** arrays = nullptr;  // (windows, batch) device pointers
  int64_t windows = 0;
};

StatePool MakeStatePool(int64_t batch, int64_t state_floats, int64_t l2_bytes, uint64_t seed) {
  StatePool s;
  const int64_t window_bytes = batch * state_floats * int64_t{sizeof(float)};
  s.windows = std::max<int64_t>(2, 8 * l2_bytes / window_bytes + 1);
  s.pool = RandomF32(s.windows * batch * state_floats, -1.0f, 1.0f, seed);
  std::vector<float*> ptrs;
  for (int64_t w = 0; w < s.windows; ++w) {
    for (int64_t r = 0; r < batch; ++r) ptrs.push_back(s.pool + (w * batch + (batch - 1 - r)) * state_floats);
  }
  s.arrays = ToDevice(ptrs);
  return s;
}

void FreeStatePool(const StatePool& s) {
  BENCH_CHECK(cudaFree(s.pool));
  BENCH_CHECK(cudaFree(s.arrays));
}

void BenchSsdStep(int64_t batch, int64_t l2_bytes) {
  const int64_t state_floats = kH * kP * kN;
  const StatePool states = MakeStatePool(batch, state_floats, l2_bytes, 4);
  float* conv = RandomF32(batch * kConvChannels, -1.0f, 1.0f, 5);  // [x | B | C] rows
  void* dt = RandomBf16(batch * kInProjWidth * 2, -4.0f, 1.0f, 6);  // in_proj rows: dt at the end
  float* A = RandomF32(kH, -4.0f, -0.25f, 7);
  float* D = RandomF32(kH, 0.5f, 1.5f, 8);
  float* dt_bias = RandomF32(kH, -1.0f, 1.0f, 9);
  float* y = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&y), sizeof(float) * batch * kH * kP));
  SsdStepParams p;
  p.num_heads = kH;
  p.head_dim = kP;
  p.num_groups = kG;
  p.state_size = kN;
  p.x = conv;
  p.B = conv + kH * kP;
  p.C = conv + kH * kP + kG * kN;
  p.x_stride = p.b_stride = p.c_stride = kConvChannels;
  p.dt = static_cast<const uint16_t*>(dt) + (kInProjWidth - kH);
  p.dt_stride = kInProjWidth;
  p.dt_type = ElementType::kBF16;
  p.dt_bias = dt_bias;
  p.dt_min = 0.001f;
  p.dt_max = 0.1f;
  p.A = A;
  p.D = D;
  p.y = y;
  p.batch = batch;
  auto call = [&](int64_t n) {
    SsdStepParams q = p;
    q.states = states.arrays + n % states.windows * batch;
    Require(cuda::SsdStep(q, g_stream));
  };
  // A sanity check: request 0 run twice from the same state gives the same, finite y.
  {
    const std::vector<float> before = Download(states.pool + (batch - 1) * state_floats, state_floats);
    call(0);
    BENCH_CHECK(cudaStreamSynchronize(g_stream));
    const std::vector<float> y1 = Download(y, batch * kH * kP);
    BENCH_CHECK(cudaMemcpy(states.pool + (batch - 1) * state_floats, before.data(), sizeof(float) * state_floats,
                           cudaMemcpyHostToDevice));
    call(0);
    BENCH_CHECK(cudaStreamSynchronize(g_stream));
    const std::vector<float> y2 = Download(y, batch * kH * kP);
    std::printf("check SsdStep batch %lld: request 0 rerun, y relative L2 %.3g\n", static_cast<long long>(batch),
                RelativeL2(std::vector<float>(y2.begin(), y2.begin() + kH * kP),
                           std::vector<float>(y1.begin(), y1.begin() + kH * kP)));
  }
  const double ms = GraphMs(call);
  Report("SsdStep", batch, 1, ms, 2 * batch * state_floats * int64_t{sizeof(float)}, l2_bytes);
  FreeStatePool(states);
  for (void* ptr : {static_cast<void*>(conv), dt, static_cast<void*>(A), static_cast<void*>(D),
                    static_cast<void*>(dt_bias), static_cast<void*>(y)}) {
    BENCH_CHECK(cudaFree(ptr));
  }
}

void BenchConvStep(int64_t batch, int64_t l2_bytes) {
  const int64_t state_floats = (kConvWidth - 1) * kConvChannels;
  const StatePool states = MakeStatePool(batch, state_floats, l2_bytes, 10);
  const int64_t xbc_offset = kH * kP;  // in_proj's row: [z | xBC | dt]
  void* proj = RandomBf16(batch * kInProjWidth * 2, -2.0f, 2.0f, 11);
  float* weight = RandomF32(kConvChannels * kConvWidth, -0.5f, 0.5f, 12);
  float* bias = RandomF32(kConvChannels, -0.5f, 0.5f, 13);
  float* out = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&out), sizeof(float) * batch * kConvChannels));
  ConvStepParams p;
  p.batch = batch;
  p.channels = kConvChannels;
  p.kernel_width = kConvWidth;
  p.x = static_cast<const uint16_t*>(proj) + xbc_offset;
  p.x_stride = kInProjWidth;
  p.x_type = ElementType::kBF16;
  p.weight = weight;
  p.bias = bias;
  p.out = out;
  p.out_type = ElementType::kF32;
  auto call = [&](int64_t n) {
    ConvStepParams q = p;
    q.states = states.arrays + n % states.windows * batch;
    Require(cuda::ConvStep(q, g_stream));
  };
  call(0);
  BENCH_CHECK(cudaStreamSynchronize(g_stream));
  const std::vector<float> first = Download(out, batch * kConvChannels);
  double sum = 0.0;
  for (float x : first) sum += std::isfinite(x) ? 0.0 : 1.0;
  std::printf("check ConvStep batch %lld: %.0f non-finite outputs\n", static_cast<long long>(batch), sum);
  const double ms = GraphMs(call);
  const int64_t bytes = batch * (2 * state_floats * 4 + kConvChannels * (2 + 4));
  Report("ConvStep", batch, 1, ms, bytes, l2_bytes);
  FreeStatePool(states);
  for (void* ptr : {proj, static_cast<void*>(weight), static_cast<void*>(bias), static_cast<void*>(out)}) {
    BENCH_CHECK(cudaFree(ptr));
  }
}

// ------------------------------------------------------------- linear

struct LinearRow {
  std::string shape;
  int64_t rows;
  double copy_gbps, w_bytes;
  double default_ms, best_ms, cublas_ms;
  std::string best;  // the fastest GEMV configuration, "warps x unroll"
};
std::vector<LinearRow> g_linear_rows;

// y (rows, N) fp32 = x (rows, K) · Wᵀ, bf16 operands, on windows of W past the
// L2: cuda::Linear (the GEMV in its default configuration for these rows),
// every other GEMV configuration, and cuBLAS GemmEx as Linear called it
// before; the default's answer compared with cuBLAS's first.
void BenchLinear(const std::string& name, int64_t n_out, int64_t k_in, int64_t rows, int64_t l2_bytes) {
  const int64_t w_bytes = 2 * n_out * k_in;
  const int64_t windows = std::max<int64_t>(2, 8 * l2_bytes / w_bytes + 1);
  void* w = RandomBf16(windows * w_bytes, -0.02f, 0.02f, 41);
  void* x = RandomBf16(2 * rows * k_in, -1.0f, 1.0f, 42);
  float *y = nullptr, *y_blas = nullptr;
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&y), sizeof(float) * rows * n_out));
  BENCH_CHECK(cudaMalloc(reinterpret_cast<void**>(&y_blas), sizeof(float) * rows * n_out));
  LinearParams p;
  p.rows = rows;
  p.in_features = k_in;
  p.out_features = n_out;
  p.type = ElementType::kBF16;
  p.x = x;
  p.y = y;
  auto window = [&](int64_t n) { return static_cast<const char*>(w) + n % windows * w_bytes; };
  auto linear = [&](int64_t n) {  // the GEMV's default configuration (cuda::Linear may leave this shape to cuBLAS)
    LinearParams q = p;
    q.weight = window(n);
    Require(tessera::cuda::LinearGemv(q, {}, g_stream));
  };
  const absl::StatusOr<tessera::cuda_host::CublasContext> blas = tessera::cuda_host::CublasHandle("bench");
  Require(blas.status());
  auto cublas = [&](int64_t n) {
    const float alpha = 1.0f, beta = 0.0f;
    Require(tessera::cuda_host::FromCublas("bench", blas->api->SetStream(blas->handle, g_stream)));
    Require(tessera::cuda_host::FromCublas(
        "bench", blas->api->GemmEx(blas->handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n_out),
                                   static_cast<int>(rows), static_cast<int>(k_in), &alpha, window(n), CUDA_R_16BF,
                                   static_cast<int>(k_in), x, CUDA_R_16BF, static_cast<int>(k_in), &beta, y_blas,
                                   CUDA_R_32F, static_cast<int>(n_out), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)));
  };
  linear(0);
  cublas(0);
  BENCH_CHECK(cudaStreamSynchronize(g_stream));
  const std::vector<float> got = Download(y, rows * n_out), want = Download(y_blas, rows * n_out);
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (double{got[i]} - want[i]) * (double{got[i]} - want[i]);
    norm += double{want[i]} * want[i];
  }
  std::printf("check Linear %s rows %lld: relative L2 to cuBLAS %.3g\n", name.c_str(), static_cast<long long>(rows),
              std::sqrt(diff / norm));
  LinearRow row{name, rows, CopyGbps(w_bytes, l2_bytes), static_cast<double>(w_bytes), GraphMs(linear), 1e30,
                GraphMs(cublas), ""};
  for (int warps : {4, 8, 16}) {
    for (int unroll : {2, 4}) {
      const double ms = GraphMs([&](int64_t n) {
        LinearParams q = p;
        q.weight = window(n);
        Require(tessera::cuda::LinearGemv(q, {warps, unroll}, g_stream));
      });
      std::printf("  GEMV %dx%d: %.4f ms\n", warps, unroll, ms);
      if (ms < row.best_ms) {
        row.best_ms = ms;
        row.best = std::to_string(warps) + "x" + std::to_string(unroll);
      }
    }
  }
  const tessera::cuda::LinearGemvConfig d = tessera::cuda::LinearGemvDefaultConfig(p);
  std::printf("Linear %s rows %lld: default (%dx%d) %.4f ms, best %s %.4f ms, cuBLAS %.4f ms\n", name.c_str(),
              static_cast<long long>(rows), d.warps, d.unroll, row.default_ms, row.best.c_str(), row.best_ms,
              row.cublas_ms);
  g_linear_rows.push_back(row);
  for (void* ptr : {w, x, static_cast<void*>(y), static_cast<void*>(y_blas)}) BENCH_CHECK(cudaFree(ptr));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> ops;
  for (int i = 1; i < argc; ++i) ops.push_back(argv[i]);
  if (ops.empty()) ops = {"attention", "ssd", "conv", "linear"};
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  const int64_t l2 = prop.l2CacheSize;
  std::printf("device: %s, %d SMs, L2 %lld MiB\n", prop.name, prop.multiProcessorCount,
              static_cast<long long>(l2 >> 20));
  BENCH_CHECK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  for (const std::string& op : ops) {
    if (op == "attention") {
      for (auto [batch, len] : std::vector<std::pair<int64_t, int64_t>>{
               {1, 65536}, {1, 1048576}, {8, 4096}, {8, 16384}, {32, 4096}, {32, 16384}}) {
        BenchAttention(batch, len, l2);
      }
    } else if (op == "ssd") {
      for (int64_t batch : {1, 32}) BenchSsdStep(batch, l2);
    } else if (op == "conv") {
      for (int64_t batch : {1, 32}) BenchConvStep(batch, l2);
    } else if (op == "linear") {
      // The 8B shapes (hidden 4096): in_proj, out_proj, qkv, o_proj, MLP up and down, a 1024-entry lm_head.
      const std::vector<std::tuple<std::string, int64_t, int64_t>> shapes = {
          {"in_proj", kInProjWidth, 4096}, {"out_proj", 4096, kH * kP}, {"qkv", (kHq + 2 * kHkv) * kD, 4096},
          {"o_proj", 4096, kHq * kD},      {"mlp_up", 21504, 4096},      {"mlp_down", 4096, 21504},
          {"lm_head", 1024, 4096}};
      for (int64_t rows : {1, 8}) {
        for (const auto& [name, n_out, k_in] : shapes) BenchLinear(name, n_out, k_in, rows, l2);
      }
    } else {
      std::fprintf(stderr, "unknown op %s (attention, ssd, conv or linear)\n", op.c_str());
      return 1;
    }
  }
  if (!g_linear_rows.empty()) {
    std::printf("\n| Linear | rows | GEMV default ms | of copy | best config | best ms | of copy | cuBLAS ms | of copy |\n"
                "|---|---|---|---|---|---|---|---|---|\n");
    for (const LinearRow& r : g_linear_rows) {
      auto of_copy = [&](double ms) { return 100.0 * r.w_bytes / ms / 1e6 / r.copy_gbps; };
      std::printf("| %s | %lld | %.4f | %.0f%% | %s | %.4f | %.0f%% | %.4f | %.0f%% |\n", r.shape.c_str(),
                  static_cast<long long>(r.rows), r.default_ms, of_copy(r.default_ms), r.best.c_str(), r.best_ms,
                  of_copy(r.best_ms), r.cublas_ms, of_copy(r.cublas_ms));
    }
  }
  if (g_rows.empty()) return 0;
  std::printf("\n| op | batch | length | ms | GB/s | of copy | copy GB/s |\n|---|---|---|---|---|---|---|\n");
  for (const Row& r : g_rows) {
    std::printf("| %s | %lld | %lld | %.4f | %.0f | %.0f%% | %.0f |\n", r.op.c_str(), static_cast<long long>(r.batch),
                static_cast<long long>(r.len), r.ms, r.gbps, 100.0 * r.gbps / r.copy_gbps, r.copy_gbps);
  }
  return 0;
}
