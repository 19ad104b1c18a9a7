// Attention on CUDA against the CPU reference: GQA, causal by global position
// (queries after, before and overlapping the keys), rows that see no key
// (out 0, lse -inf), odd head dims, strides, kv_len 0; AttentionMerge with
// -inf partials; and the bf16 check (MixedAttention on bf16 q/k/v, the same
// kernel, must be within 2× the error of a plain implementation rounding inputs
// and outputs; mixed_precision_gpu_test.cc covers its other features).
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/attention.h"
#include "kernels/cuda/mixed_precision.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::CloseAllowingNegInf;
using gpu_test::CloseInRelativeL2;
using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::NaNs;
using gpu_test::RandomFloats;
using gpu_test::RandomRows;

constexpr double kTolerance = 1e-5;

class AttentionGpuTest : public GpuTest {};

struct AttentionCase {
  int64_t q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, kv_pos0;
  bool causal;
  int64_t pad;  // extra floats per token row of q, k, v
};

TEST_F(AttentionGpuTest, MatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const AttentionCase& c : {
           AttentionCase{1, 1, 1, 1, 1, 0, 0, true, 0},
           AttentionCase{5, 5, 4, 2, 64, 0, 0, true, 0},
           AttentionCase{37, 100, 4, 1, 128, 63, 0, true, 3},     // queries after most keys
           AttentionCase{130, 130, 6, 2, 80, 0, 0, true, 0},       // odd head_dim, 3 q tiles
           AttentionCase{70, 45, 2, 2, 16, 0, 0, false, 1},        // not causal
           AttentionCase{40, 50, 2, 1, 64, 10, 30, true, 0},       // first 20 rows see nothing
           AttentionCase{9, 20, 2, 1, 64, 0, 100, true, 0},        // no row sees a key
           AttentionCase{33, 0, 2, 1, 64, 0, 0, true, 0},          // kv_len 0
           AttentionCase{100, 150, 4, 2, 256, 50, 0, true, 2},     // head_dim 256 tiles
           AttentionCase{200, 200, 3, 3, 200, 0, 0, true, 0},      // head_dim 200
           AttentionCase{1024, 1024, 8, 2, 128, 0, 0, true, 0},    // many key tiles
           AttentionCase{1, 777, 8, 2, 128, 776, 0, true, 0},      // decode row
       }) {
    SCOPED_TRACE(testing::Message() << "Lq " << c.q_len << " Lk " << c.kv_len << " Hq "
                                    << c.q_heads << " Hkv " << c.kv_heads << " D " << c.head_dim
                                    << " q0 " << c.q_pos0 << " k0 " << c.kv_pos0);
    const int64_t q_stride = c.q_heads * c.head_dim + c.pad;
    const int64_t kv_stride = c.kv_heads * c.head_dim + c.pad;
    const auto q = RandomRows(rng, c.q_len, c.q_heads * c.head_dim, q_stride);
    const auto k = RandomRows(rng, c.kv_len, c.kv_heads * c.head_dim, kv_stride);
    const auto v = RandomRows(rng, c.kv_len, c.kv_heads * c.head_dim, kv_stride);
    const int64_t out_elems = c.q_len * c.q_heads * c.head_dim, rows = c.q_len * c.q_heads;
    std::vector<float> want_out(out_elems), want_lse(rows);
    AttentionParams p{c.q_len, c.kv_len, c.q_heads, c.kv_heads, c.head_dim,
                      q.data(), q_stride, k.data(), kv_stride, v.data(), kv_stride,
                      c.q_pos0, c.kv_pos0, c.causal, 1.0f / std::sqrt(float(c.head_dim)),
                      want_out.data(), want_lse.data()};
    ASSERT_TRUE(cpu::Attention(p).ok());
    DeviceArray<float> d_q(q), d_k(k), d_v(v), d_out(NaNs(out_elems)), d_lse(NaNs(rows));
    p.q = d_q.get();
    p.k = c.kv_len > 0 ? d_k.get() : nullptr;
    p.v = c.kv_len > 0 ? d_v.get() : nullptr;
    p.out = d_out.get();
    p.lse = d_lse.get();
    const absl::Status status = cuda::Attention(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const auto got_out = d_out.Download();
    bool any_seen = false;
    for (float l : want_lse) any_seen |= l != -INFINITY;
    if (any_seen) {
      EXPECT_TRUE(CloseInRelativeL2(got_out, want_out, kTolerance)) << "out";
    } else {
      EXPECT_EQ(got_out, want_out);  // all zeros, exactly
    }
    EXPECT_TRUE(CloseAllowingNegInf(d_lse.Download(), want_lse, kTolerance)) << "lse";
  }
}

TEST_F(AttentionGpuTest, MergeMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [rows, head_dim] : {std::pair<int64_t, int64_t>{1, 1}, {7, 64}, {1000, 128}, {33, 200}}) {
    auto out = RandomFloats(rng, rows * head_dim);
    auto lse = RandomFloats(rng, rows, -5.0f, 5.0f);
    const auto part_out = RandomFloats(rng, rows * head_dim);
    auto part_lse = RandomFloats(rng, rows, -5.0f, 5.0f);
    // Every combination of "saw nothing" on either side.
    for (int64_t r = 0; r < rows; ++r) {
      if (r % 4 == 1) lse[r] = -INFINITY;
      if (r % 4 == 2) part_lse[r] = -INFINITY;
      if (r % 4 == 3) lse[r] = part_lse[r] = -INFINITY;
    }
    if (rows == 1) lse[0] = 1.0f, part_lse[0] = 0.5f;
    std::vector<float> want_out = out, want_lse = lse;
    AttentionMergeParams p{rows, head_dim, want_out.data(), want_lse.data(), part_out.data(),
                           part_lse.data()};
    ASSERT_TRUE(cpu::AttentionMerge(p).ok());
    DeviceArray<float> d_out(out), d_lse(lse), d_part_out(part_out), d_part_lse(part_lse);
    p.out = d_out.get();
    p.lse = d_lse.get();
    p.part_out = d_part_out.get();
    p.part_lse = d_part_lse.get();
    ASSERT_TRUE(cuda::AttentionMerge(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(d_out.Download(), want_out, kTolerance)) << rows;
    EXPECT_TRUE(CloseAllowingNegInf(d_lse.Download(), want_lse, kTolerance)) << rows;
  }
}

TEST_F(AttentionGpuTest, Bf16WithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  const int64_t L = 512, Hq = 4, Hkv = 2, D = 128;
  const auto q = RandomFloats(rng, L * Hq * D, -2.0f, 2.0f);
  const auto k = RandomFloats(rng, L * Hkv * D, -2.0f, 2.0f);
  const auto v = RandomFloats(rng, L * Hkv * D);
  AttentionParams p{L, L, Hq, Hkv, D, nullptr, 0, nullptr, 0, nullptr, 0, 0, 0, true,
                    1.0f / std::sqrt(float(D)), nullptr, nullptr};
  // fp32 reference on the unrounded inputs.
  std::vector<float> ref(L * Hq * D);
  p.q = q.data(), p.k = k.data(), p.v = v.data(), p.out = ref.data();
  ASSERT_TRUE(cpu::Attention(p).ok());
  // Plain bf16: rounded inputs, fp32 math, output rounded to bf16.
  const auto qr = gpu_test::RoundedBf16(q), kr = gpu_test::RoundedBf16(k),
             vr = gpu_test::RoundedBf16(v);
  std::vector<float> plain(L * Hq * D);
  p.q = qr.data(), p.k = kr.data(), p.v = vr.data(), p.out = plain.data();
  ASSERT_TRUE(cpu::Attention(p).ok());
  plain = gpu_test::RoundedBf16(plain);
  DeviceArray<uint16_t> d_q(gpu_test::ToBf16(q)), d_k(gpu_test::ToBf16(k)),
      d_v(gpu_test::ToBf16(v));
  DeviceArray<float> d_out(NaNs(L * Hq * D));
  p.q = p.k = p.v = nullptr;
  p.out = d_out.get();
  const absl::Status status = cuda::MixedAttention(p, cuda::ElementType::kBF16, d_q.get(),
                                                   d_k.get(), d_v.get(), nullptr);
  ASSERT_TRUE(status.ok()) << status;
  const auto got = d_out.Download();
  const std::vector<double> ref64(ref.begin(), ref.end());
  for (float x : got) ASSERT_TRUE(std::isfinite(x));
  const double err = gpu_test::RelativeL2(got, ref64);
  const double plain_err = gpu_test::RelativeL2(plain, ref64);
  std::printf("Attention bf16: relative L2 %.3g, plain bf16 %.3g\n", err, plain_err);
  EXPECT_GT(plain_err, 0.0);
  EXPECT_LE(err, 2.0 * plain_err);
}

}  // namespace
}  // namespace tessera
