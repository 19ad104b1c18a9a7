// DecodeAttention (a batch of one-row decode queries, each request with its
// own K/V allocation and length) on CUDA. fp32 against the CPU reference on
// the split-KV path (head_dim 64 and 128, GQA 1 to 16, lengths from 0 to
// thousands mixed in one batch, one long request among short ones, with and
// without the workspace) and on the plain kernel (head_dim 16 as the tiny
// models, 80, K/V strides that are not 16-byte rows); bf16 held within 2x the
// error of a plain implementation that rounds its inputs and output to bf16;
// the plain kernel forced on a split-KV shape agreeing; the workspace size
// (set by the shape: the lengths are device values); determinism.
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/decode_attention.h"
#include "kernels/decode_attention.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::CloseAllowingNegInf;
using gpu_test::CloseInRelativeL2;
using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::NaNs;
using gpu_test::RandomRows;
using kernel_test::IsInvalidArgumentMentioning;

constexpr double kTolerance = 1e-5;

class DecodeAttentionGpuTest : public GpuTest {};

struct BatchCase {
  std::vector<int32_t> lens;
  int64_t heads, kv_heads, dim, kv_pad;  // kv_pad: extra elements per K/V row
};

// Host inputs (fp32 values; bf16 runs round them first) of a case.
struct HostBatch {
  int64_t q_stride = 0, kv_stride = 0;
  std::vector<float> q;                   // (batch, q_stride)
  std::vector<std::vector<float>> k, v;   // batch × (len, kv_stride)
};

HostBatch MakeHost(const BatchCase& c, std::mt19937& rng, bool round_bf16) {
  HostBatch h;
  h.q_stride = c.heads * c.dim + 1;
  h.kv_stride = c.kv_heads * c.dim + c.kv_pad;
  auto maybe_round = [&](std::vector<float> v) { return round_bf16 ? kernel_test::RoundedBf16(v) : v; };
  h.q = maybe_round(RandomRows(rng, c.lens.size(), c.heads * c.dim, h.q_stride, -2.0f, 2.0f));
  for (int32_t len : c.lens) {
    h.k.push_back(maybe_round(RandomRows(rng, len, c.kv_heads * c.dim, h.kv_stride, -2.0f, 2.0f)));
    h.v.push_back(maybe_round(RandomRows(rng, len, c.kv_heads * c.dim, h.kv_stride)));
  }
  return h;
}

DecodeAttentionParams ParamsFor(const BatchCase& c, const HostBatch& h) {
  DecodeAttentionParams p;
  p.batch = static_cast<int64_t>(c.lens.size());
  p.num_q_heads = c.heads;
  p.num_kv_heads = c.kv_heads;
  p.head_dim = c.dim;
  p.q_stride = h.q_stride;
  p.k_stride = p.v_stride = h.kv_stride;
  p.scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
  return p;
}

// The CPU answer (fp32) on host inputs.
void CpuAnswer(const BatchCase& c, const HostBatch& h, std::vector<float>& out, std::vector<float>& lse) {
  const int64_t batch = static_cast<int64_t>(c.lens.size());
  out = NaNs(batch * c.heads * c.dim);
  lse = NaNs(batch * c.heads);
  std::vector<const void*> k, v;
  for (int64_t r = 0; r < batch; ++r) {
    k.push_back(h.k[r].data());
    v.push_back(h.v[r].data());
  }
  DecodeAttentionParams p = ParamsFor(c, h);
  p.q = h.q.data();
  p.k = k.data();
  p.v = v.data();
  p.kv_lens = c.lens.data();
  p.out = out.data();
  p.lse = lse.data();
  ASSERT_TRUE(cpu::DecodeAttention(p).ok());
}

// The inputs on the device, as fp32 or bf16, each request's K and V in its own allocation.
class DeviceBatch {
 public:
  DeviceBatch(const BatchCase& c, const HostBatch& h, bool bf16) : bf16_(bf16) {
    q_ = Upload(h.q);
    std::vector<const void*> k, v;
    for (size_t r = 0; r < c.lens.size(); ++r) {
      k.push_back(c.lens[r] > 0 ? Upload(h.k[r]) : nullptr);
      v.push_back(c.lens[r] > 0 ? Upload(h.v[r]) : nullptr);
    }
    k_ = std::make_unique<DeviceArray<const void*>>(k);
    v_ = std::make_unique<DeviceArray<const void*>>(v);
    lens_ = std::make_unique<DeviceArray<int32_t>>(c.lens);
    const int64_t rows = static_cast<int64_t>(c.lens.size()) * c.heads;
    out_ = std::make_unique<DeviceArray<float>>(NaNs(rows * c.dim));
    lse_ = std::make_unique<DeviceArray<float>>(NaNs(rows));
  }
  void Point(DecodeAttentionParams& p) const {
    p.type = bf16_ ? ElementType::kBF16 : ElementType::kF32;
    p.q = q_;
    p.k = k_->get();
    p.v = v_->get();
    p.kv_lens = lens_->get();
    p.out = out_->get();
    p.lse = lse_->get();
  }
  // New lengths for the same allocations (each at most the request's first length).
  void SetLens(const std::vector<int32_t>& lens) const {
    ASSERT_EQ(cudaMemcpy(lens_->get(), lens.data(), sizeof(int32_t) * lens.size(), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  std::vector<float> Out() const { return out_->Download(); }
  std::vector<float> Lse() const { return lse_->Download(); }

 private:
  const void* Upload(const std::vector<float>& host) {
    if (bf16_) {
      bf16_buffers_.push_back(std::make_unique<DeviceArray<uint16_t>>(gpu_test::ToBf16(host)));
      return bf16_buffers_.back()->get();
    }
    f32_buffers_.push_back(std::make_unique<DeviceArray<float>>(host));
    return f32_buffers_.back()->get();
  }
  bool bf16_;
  std::vector<std::unique_ptr<DeviceArray<float>>> f32_buffers_;
  std::vector<std::unique_ptr<DeviceArray<uint16_t>>> bf16_buffers_;
  const void* q_ = nullptr;
  std::unique_ptr<DeviceArray<const void*>> k_, v_;
  std::unique_ptr<DeviceArray<int32_t>> lens_;
  std::unique_ptr<DeviceArray<float>> out_, lse_;
};

// Runs cuda::DecodeAttention on `d` with (or without) the workspace it asks for.
absl::Status RunCuda(DecodeAttentionParams p, const DeviceBatch& d, bool with_workspace) {
  d.Point(p);
  const int64_t bytes = cuda::DecodeAttentionWorkspaceBytes(p);
  std::unique_ptr<DeviceArray<uint8_t>> workspace;
  if (with_workspace && bytes > 0) {
    workspace = std::make_unique<DeviceArray<uint8_t>>(std::vector<uint8_t>(bytes, 0xFF));
    p.workspace = workspace->get();
    p.workspace_bytes = bytes;
  }
  const absl::Status status = cuda::DecodeAttention(p, nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return status;
}

const BatchCase kCases[] = {
    {{1}, 1, 1, 64, 0},
    {{4096}, 32, 8, 128, 0},                            // the 8B shape, one request: many pieces
    {{0, 1, 17, 1000, 5000, 64, 65, 3}, 32, 8, 128, 8},  // mixed lengths, padded rows
    {{30000, 50, 60, 70}, 8, 2, 128, 0},                // one long request among short ones
    {{300, 0, 129}, 16, 1, 64, 0},                      // GQA 16
    {{77, 1500}, 128, 1, 64, 0},                        // GQA 128: two row blocks
    {{33, 7, 900}, 4, 4, 128, 0},                       // no GQA
    {{0, 0}, 8, 2, 128, 0},                             // nothing to see
};

TEST_F(DecodeAttentionGpuTest, SplitKvF32MatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const BatchCase& c : kCases) {
    for (bool with_workspace : {true, false}) {
      SCOPED_TRACE(testing::Message() << "batch " << c.lens.size() << " Hq " << c.heads << " Hkv " << c.kv_heads
                                      << " D " << c.dim << " workspace " << with_workspace);
      const HostBatch h = MakeHost(c, rng, false);
      std::vector<float> want_out, want_lse;
      CpuAnswer(c, h, want_out, want_lse);
      const DecodeAttentionParams p = ParamsFor(c, h);
      EXPECT_TRUE(cuda_decode::BatchSplitKvSupports(p));
      const DeviceBatch d(c, h, false);
      const absl::Status status = RunCuda(p, d, with_workspace);
      ASSERT_TRUE(status.ok()) << status;
      bool any_seen = false;
      for (int32_t len : c.lens) any_seen |= len > 0;
      if (any_seen) {
        EXPECT_TRUE(CloseInRelativeL2(d.Out(), want_out, kTolerance)) << "out";
      } else {
        EXPECT_EQ(d.Out(), want_out);  // zeros, exactly
      }
      EXPECT_TRUE(CloseAllowingNegInf(d.Lse(), want_lse, kTolerance)) << "lse";
    }
  }
}

TEST_F(DecodeAttentionGpuTest, PlainKernelMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const BatchCase& c : {BatchCase{{5, 0, 40}, 4, 2, 16, 0},  // the tiny models' head_dim
                             BatchCase{{300, 2}, 6, 2, 80, 1},
                             BatchCase{{129, 64}, 8, 2, 128, 1},  // odd K/V stride: rows not 16-byte
                             BatchCase{{10}, 2, 1, 256, 0}}) {
    SCOPED_TRACE(testing::Message() << "D " << c.dim << " pad " << c.kv_pad);
    const HostBatch h = MakeHost(c, rng, false);
    std::vector<float> want_out, want_lse;
    CpuAnswer(c, h, want_out, want_lse);
    DecodeAttentionParams p = ParamsFor(c, h);
    const DeviceBatch d(c, h, false);
    d.Point(p);
    EXPECT_FALSE(cuda_decode::BatchSplitKvSupports(p));
    EXPECT_EQ(cuda::DecodeAttentionWorkspaceBytes(p), 0);  // valid params, but the plain kernel takes none
    const absl::Status status = RunCuda(p, d, true);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(CloseInRelativeL2(d.Out(), want_out, kTolerance));
    EXPECT_TRUE(CloseAllowingNegInf(d.Lse(), want_lse, kTolerance));
  }
}

// The flash-attention rule: bf16 within 2x the error of plain bf16 (rounded
// inputs, fp32 math, output rounded), both against fp32 on unrounded inputs.
TEST_F(DecodeAttentionGpuTest, Bf16WithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  for (const BatchCase& c : {kCases[1], kCases[2], kCases[3], kCases[4], BatchCase{{9, 500}, 4, 2, 16, 0}}) {
    SCOPED_TRACE(testing::Message() << "batch " << c.lens.size() << " Hq " << c.heads << " D " << c.dim);
    const HostBatch h = MakeHost(c, rng, false);
    std::vector<float> ref_out, ref_lse;
    CpuAnswer(c, h, ref_out, ref_lse);
    HostBatch rounded = h;
    rounded.q = kernel_test::RoundedBf16(h.q);
    for (size_t r = 0; r < c.lens.size(); ++r) {
      rounded.k[r] = kernel_test::RoundedBf16(h.k[r]);
      rounded.v[r] = kernel_test::RoundedBf16(h.v[r]);
    }
    std::vector<float> plain, plain_lse;
    CpuAnswer(c, rounded, plain, plain_lse);
    plain = kernel_test::RoundedBf16(plain);
    const DeviceBatch d(c, h, true);
    const absl::Status status = RunCuda(ParamsFor(c, h), d, true);
    ASSERT_TRUE(status.ok()) << status;
    const std::vector<float> got = d.Out();
    for (float x : got) ASSERT_TRUE(std::isfinite(x));
    const std::vector<double> ref64(ref_out.begin(), ref_out.end());
    const double err = gpu_test::RelativeL2(got, ref64), plain_err = gpu_test::RelativeL2(plain, ref64);
    EXPECT_GT(plain_err, 0.0);
    EXPECT_LE(err, 2.0 * plain_err) << "relative L2 " << err << ", plain bf16 " << plain_err;
    EXPECT_TRUE(CloseAllowingNegInf(d.Lse(), ref_lse, 1e-2)) << "lse";
  }
}

TEST_F(DecodeAttentionGpuTest, PlainKernelAgreesWithSplitKvOnItsShapes) {
  std::mt19937 rng(std::random_device{}());
  const BatchCase& c = kCases[2];
  const HostBatch h = MakeHost(c, rng, false);
  const DeviceBatch split(c, h, false), plain(c, h, false);
  ASSERT_TRUE(RunCuda(ParamsFor(c, h), split, true).ok());
  DecodeAttentionParams p = ParamsFor(c, h);
  plain.Point(p);
  ASSERT_EQ(cuda_decode::LaunchDecodeAttentionFfma(p, nullptr), cudaSuccess);
  EXPECT_TRUE(CloseInRelativeL2(plain.Out(), split.Out(), kTolerance));
  EXPECT_TRUE(CloseAllowingNegInf(plain.Lse(), split.Lse(), kTolerance));
}

TEST_F(DecodeAttentionGpuTest, IsDeterministic) {
  std::mt19937 rng(std::random_device{}());
  const BatchCase& c = kCases[3];
  const HostBatch h = MakeHost(c, rng, false);
  const DeviceBatch d(c, h, false);
  ASSERT_TRUE(RunCuda(ParamsFor(c, h), d, true).ok());
  const std::vector<float> first = d.Out();
  ASSERT_TRUE(RunCuda(ParamsFor(c, h), d, true).ok());
  const std::vector<float> second = d.Out();
  EXPECT_EQ(std::memcmp(first.data(), second.data(), sizeof(float) * first.size()), 0);
}

// The plan lives on the device: one captured graph, replayed after the
// lengths change in device memory, answers for the new lengths.
TEST_F(DecodeAttentionGpuTest, AGraphCapturedOnceServesOtherLengths) {
  std::mt19937 rng(std::random_device{}());
  const BatchCase c{{3000, 2000, 1000, 500}, 32, 8, 128, 0};
  const HostBatch h = MakeHost(c, rng, false);
  const DeviceBatch d(c, h, false);
  DecodeAttentionParams p = ParamsFor(c, h);
  d.Point(p);
  p.workspace_bytes = cuda::DecodeAttentionWorkspaceBytes(p);
  ASSERT_GT(p.workspace_bytes, 0);
  DeviceArray<uint8_t> workspace(std::vector<uint8_t>(p.workspace_bytes, 0xFF));
  p.workspace = workspace.get();
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), cudaSuccess);
  const absl::Status captured = cuda::DecodeAttention(p, stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_TRUE(captured.ok()) << captured;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (const std::vector<int32_t>& lens : {std::vector<int32_t>{3000, 2000, 1000, 500}, {1, 2000, 0, 499},
                                          {2999, 17, 1000, 128}}) {
    SCOPED_TRACE(testing::Message() << lens[0] << " " << lens[1] << " " << lens[2] << " " << lens[3]);
    d.SetLens(lens);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    BatchCase now = c;
    now.lens = lens;
    std::vector<float> want_out, want_lse;
    CpuAnswer(now, h, want_out, want_lse);
    EXPECT_TRUE(CloseInRelativeL2(d.Out(), want_out, kTolerance));
    EXPECT_TRUE(CloseAllowingNegInf(d.Lse(), want_lse, kTolerance));
  }
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(stream), cudaSuccess);
}

TEST_F(DecodeAttentionGpuTest, WorkspaceFollowsTheShape) {
  DecodeAttentionParams p;
  p.batch = 1;
  p.num_q_heads = 32;
  p.num_kv_heads = 8;
  p.head_dim = 128;
  p.type = ElementType::kBF16;
  p.scale = 0.1f;
  const int32_t* fake = reinterpret_cast<const int32_t*>(16);  // never read: sizing only
  const void* const* fake_ptrs = reinterpret_cast<const void* const*>(16);
  p.q = fake;
  p.k = p.v = fake_ptrs;
  p.kv_lens = fake;
  p.out = reinterpret_cast<float*>(16);
  const int64_t one = cuda::DecodeAttentionWorkspaceBytes(p);
  EXPECT_GT(one, 0);  // batch 1: the keys split across the SMs
  p.batch = 32;
  EXPECT_GE(cuda::DecodeAttentionWorkspaceBytes(p), one);  // more requests: more partial rows
  p.head_dim = 16;
  EXPECT_EQ(cuda::DecodeAttentionWorkspaceBytes(p), 0);  // the plain kernel takes none
  p.head_dim = 128;
  p.scale = -1.0f;
  EXPECT_EQ(cuda::DecodeAttentionWorkspaceBytes(p), 0);  // invalid
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::DecodeAttention(p, nullptr), "scale"));
  p.scale = 0.1f;
  p.head_dim = 512;
  EXPECT_EQ(cuda::DecodeAttention(p, nullptr).code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace tessera
