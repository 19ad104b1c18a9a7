// CUDA against CPU for the row-wise and elementwise ops: SiluMul, ReluSquared,
// DtSoftplus, RmsNorm, GatedRmsNorm, Rope, ScaleAdd (Embedding: embedding_gpu_test.cc).
// Fresh random inputs of awkward sizes, outputs poisoned with NaN, strided rows
// padded with NaN, and the in-place forms the contracts allow; fp32, and bf16
// against the CPU's bf16 reference (the same fp32 math rounded once), on
// shapes that take the 16-byte vector and register paths and shapes that
// take the plain ones.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/activation.h"
#include "kernels/dt_softplus.h"
#include "kernels/gated_rms_norm.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/scale_add.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::CloseInRelativeL2;
using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::NaNs;
using gpu_test::RandomFloats;
using gpu_test::RandomRows;
using kernel_test::PackedRows;

constexpr double kTolerance = 1e-5;  // fp32 against the fp32 CPU reference
// bf16 outputs against the CPU's bf16 outputs: both round the same fp32 value
// up to summation order, so they differ where that value sits at a rounding
// boundary, by one bf16 step.
constexpr double kBf16Tolerance = 1e-3;
constexpr uint16_t kBf16NaN = 0x7FC0;

using gpu_test::FromBf16;
using gpu_test::ToBf16;

class ElementwiseGpuTest : public GpuTest {};

TEST_F(ElementwiseGpuTest, SiluMulMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [rows, width, stride] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1},
                                     {3, 7, 9},
                                     {17, 1000, 1000},
                                     {64, 4099, 4100}}) {
    SCOPED_TRACE(testing::Message() << rows << "x" << width << " stride " << stride);
    const auto gate = RandomRows(rng, rows, width, stride, -6.0f, 6.0f);
    const auto up = RandomRows(rng, rows, width, stride);
    std::vector<float> want(rows * width);
    SiluMulParams p{rows, width, gate.data(), stride, up.data(), stride, want.data()};
    ASSERT_TRUE(cpu::SiluMul(p).ok());
    DeviceArray<float> d_gate(gate), d_up(up), d_out(NaNs(rows * width));
    p.gate = d_gate.get();
    p.up = d_up.get();
    p.out = d_out.get();
    ASSERT_TRUE(cuda::SiluMul(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(d_out.Download(), want, kTolerance));
    if (stride == width) {  // in place over gate
      p.out = d_gate.get();
      ASSERT_TRUE(cuda::SiluMul(p, nullptr).ok());
      EXPECT_TRUE(CloseInRelativeL2(d_gate.Download(), want, kTolerance));
    }
  }
}

TEST_F(ElementwiseGpuTest, ReluSquaredMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (int64_t count : {1, 31, 4097, 1 << 20}) {
    auto x = RandomFloats(rng, count, -3.0f, 3.0f);
    x[0] = std::fabs(x[0]) + 0.5f;  // never compare on an all-zero reference
    std::vector<float> want(count);
    ReluSquaredParams p{count, x.data(), want.data()};
    ASSERT_TRUE(cpu::ReluSquared(p).ok());
    DeviceArray<float> d_x(x), d_out(NaNs(count));
    p.x = d_x.get();
    p.out = d_out.get();
    ASSERT_TRUE(cuda::ReluSquared(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(d_out.Download(), want, kTolerance)) << count;
    p.out = d_x.get();  // in place
    ASSERT_TRUE(cuda::ReluSquared(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(d_x.Download(), want, kTolerance)) << count;
  }
}

TEST_F(ElementwiseGpuTest, ScaleAddMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [rows, width, x_stride, y_stride] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1},
                                                 {5, 19, 23, 20},
                                                 {300, 4096, 4096, 4096}}) {
    SCOPED_TRACE(testing::Message() << rows << "x" << width);
    const auto x = RandomRows(rng, rows, width, x_stride);
    const auto y = RandomRows(rng, rows, width, y_stride);
    for (bool with_x : {true, false}) {
      std::vector<float> want = y;
      ScaleAddParams p{rows, width, 0.22f, with_x ? x.data() : nullptr, x_stride, 1.5f, want.data(), y_stride};
      ASSERT_TRUE(cpu::ScaleAdd(p).ok());
      DeviceArray<float> d_x(x), d_y(y);
      p.x = with_x ? d_x.get() : nullptr;
      p.y = d_y.get();
      ASSERT_TRUE(cuda::ScaleAdd(p, nullptr).ok());
      EXPECT_TRUE(CloseInRelativeL2(PackedRows(d_y.Download(), rows, width, y_stride),
                                    PackedRows(want, rows, width, y_stride), kTolerance))
          << with_x;
    }
  }
}

// dt_raw fp32, and bf16 (the in_proj's bf16 dt columns, a strided view).
TEST_F(ElementwiseGpuTest, DtSoftplusMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  const float inf = std::numeric_limits<float>::infinity();
  for (auto [rows, heads, stride, dt_max] : {std::tuple<int64_t, int64_t, int64_t, float>{1, 1, 1, inf},
                                             {5, 24, 31, 0.1f},
                                             {1000, 128, 128 + 2 * 8 * 128, inf},
                                             {1000, 128, 18560, inf}}) {
    for (ElementType type : {ElementType::kF32, ElementType::kBF16}) {
      SCOPED_TRACE(testing::Message() << rows << "x" << heads << " " << ElementTypeName(type));
      const auto raw = RandomRows(rng, rows, heads, stride, -30.0f, 30.0f);
      const auto raw16 = ToBf16(raw);
      const void* raw_data = type == ElementType::kF32 ? static_cast<const void*>(raw.data()) : raw16.data();
      const auto bias = RandomFloats(rng, heads, -2.0f, 2.0f);
      std::vector<float> want(rows * heads);
      DtSoftplusParams p{rows, heads, raw_data, stride, bias.data(), 0.001f, dt_max, want.data()};
      p.dt_raw_type = type;
      ASSERT_TRUE(cpu::DtSoftplus(p).ok());
      DeviceArray<float> d_raw(raw), d_bias(bias), d_out(NaNs(rows * heads));
      DeviceArray<uint16_t> d_raw16(raw16);
      p.dt_raw = type == ElementType::kF32 ? static_cast<const void*>(d_raw.get()) : d_raw16.get();
      p.dt_bias = d_bias.get();
      p.out = d_out.get();
      ASSERT_TRUE(cuda::DtSoftplus(p, nullptr).ok());
      EXPECT_TRUE(CloseInRelativeL2(d_out.Download(), want, kTolerance));
    }
  }
}

TEST_F(ElementwiseGpuTest, RmsNormMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [rows, width, stride] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1},
                                     {5, 7, 12},
                                     {33, 1000, 1000},
                                     {9, 4096, 4096 + 64},
                                     {3, 5000, 5000}}) {
    SCOPED_TRACE(testing::Message() << rows << "x" << width << " stride " << stride);
    const auto x = RandomRows(rng, rows, width, stride, -2.0f, 2.0f);
    const auto weight = RandomFloats(rng, width, 0.5f, 1.5f);
    std::vector<float> want(rows * width);
    RmsNormParams p{rows, width, 1e-5f, x.data(), stride, weight.data(), want.data()};
    ASSERT_TRUE(cpu::RmsNorm(p).ok());
    DeviceArray<float> d_x(x), d_w(weight), d_out(NaNs(rows * width));
    p.x = d_x.get();
    p.weight = d_w.get();
    p.out = d_out.get();
    ASSERT_TRUE(cuda::RmsNorm(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(d_out.Download(), want, kTolerance));
    if (stride == width) {
      p.out = d_x.get();
      ASSERT_TRUE(cuda::RmsNorm(p, nullptr).ok());
      EXPECT_TRUE(CloseInRelativeL2(d_x.Download(), want, kTolerance));
    }
  }
  RmsNormParams bad{1, 4, -1.0f};
  EXPECT_TRUE(kernel_test::IsInvalidArgumentMentioning(cuda::RmsNorm(bad, nullptr), "eps"));
}

TEST_F(ElementwiseGpuTest, GatedRmsNormMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [rows, width, group, stride] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1},
                                            {3, 7, 7, 10},
                                            {5, 1024, 1024, 1024},
                                            {17, 1024, 128, 1024 + 2048},
                                            {4, 8192, 1024, 8192},
                                            {2, 96, 3, 96}}) {
    SCOPED_TRACE(testing::Message() << rows << "x" << width << " group " << group);
    const auto y = RandomRows(rng, rows, width, stride, -2.0f, 2.0f);
    const auto z = RandomRows(rng, rows, width, stride + 1, -4.0f, 4.0f);
    const auto weight = RandomFloats(rng, width, 0.5f, 1.5f);
    std::vector<float> want(rows * width);
    GatedRmsNormParams p{rows, width, group, 1e-6f, y.data(), stride, z.data(), stride + 1,
                         weight.data(), want.data()};
    ASSERT_TRUE(cpu::GatedRmsNorm(p).ok());
    DeviceArray<float> d_y(y), d_z(z), d_w(weight), d_out(NaNs(rows * width));
    p.y = d_y.get();
    p.z = d_z.get();
    p.weight = d_w.get();
    p.out = d_out.get();
    ASSERT_TRUE(cuda::GatedRmsNorm(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(d_out.Download(), want, kTolerance));
    if (stride == width) {
      p.out = d_y.get();
      ASSERT_TRUE(cuda::GatedRmsNorm(p, nullptr).ok());
      EXPECT_TRUE(CloseInRelativeL2(d_y.Download(), want, kTolerance));
    }
  }
  GatedRmsNormParams bad{1, 10, 3};
  EXPECT_TRUE(
      kernel_test::IsInvalidArgumentMentioning(cuda::GatedRmsNorm(bad, nullptr), "group_size"));
}

TEST_F(ElementwiseGpuTest, RopeMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [tokens, heads, head_dim, rotary, position0, pad] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>{1, 1, 2, 2, 0, 0},
        {33, 3, 64, 32, 0, 5},
        {17, 4, 128, 128, 100000, 0},
        {300, 2, 80, 40, 7, 16}}) {
    SCOPED_TRACE(testing::Message() << tokens << " tokens, rotary " << rotary << " of "
                                    << head_dim << ", position0 " << position0);
    const int64_t width = heads * head_dim;
    const int64_t stride = width + pad;
    const auto x = RandomRows(rng, tokens, width, stride);
    std::vector<float> want = x;
    RopeParams p{tokens, heads, head_dim, rotary, 10000.0f, position0, want.data(), stride};
    ASSERT_TRUE(cpu::Rope(p).ok());
    DeviceArray<float> d_x(x);
    p.x = d_x.get();
    ASSERT_TRUE(cuda::Rope(p, nullptr).ok());
    // Compare the rows only (padding must still be NaN, untouched).
    std::vector<float> got = d_x.Download(), got_rows, want_rows;
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t c = 0; c < stride; ++c) {
        if (c < width) {
          got_rows.push_back(got[t * stride + c]);
          want_rows.push_back(want[t * stride + c]);
        } else {
          EXPECT_TRUE(std::isnan(got[t * stride + c]));
        }
      }
    }
    EXPECT_TRUE(CloseInRelativeL2(got_rows, want_rows, kTolerance));
  }
}

TEST_F(ElementwiseGpuTest, Bf16SiluMulInPlaceOverTheGateHalfMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [rows, width] : {std::pair<int64_t, int64_t>{1, 8}, {3, 7}, {33, 1024}, {17, 4104}}) {
    SCOPED_TRACE(testing::Message() << rows << "x" << width);
    const int64_t stride = 2 * width;  // (rows, [gate | up])
    const auto fused = ToBf16(RandomRows(rng, rows, stride, stride, -6.0f, 6.0f));
    std::vector<uint16_t> want = fused;
    SiluMulParams p{rows, width, want.data(), stride, want.data() + width, stride, want.data()};
    p.out_stride = stride;
    p.type = ElementType::kBF16;
    ASSERT_TRUE(cpu::SiluMul(p).ok());
    DeviceArray<uint16_t> d_fused(fused);
    p.gate = d_fused.get();
    p.up = d_fused.get() + width;
    p.out = d_fused.get();
    ASSERT_TRUE(cuda::SiluMul(p, nullptr).ok());
    const auto got = d_fused.Download();
    EXPECT_TRUE(CloseInRelativeL2(PackedRows(FromBf16(got), rows, width, stride),
                                  PackedRows(FromBf16(want), rows, width, stride), kBf16Tolerance));
    for (int64_t r = 0; r < rows; ++r) {  // the up half is read, never written
      EXPECT_TRUE(std::equal(got.begin() + r * stride + width, got.begin() + (r + 1) * stride,
                             fused.begin() + r * stride + width));
    }
  }
}

TEST_F(ElementwiseGpuTest, Bf16ReluSquaredMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (int64_t count : {1, 31, 4097, 1 << 20}) {
    for (int64_t offset : {0, 1}) {  // 1: a 2-byte aligned start, the scalar loop
      SCOPED_TRACE(testing::Message() << count << " offset " << offset);
      auto x = RandomFloats(rng, count + offset, -3.0f, 3.0f);
      x[offset] = std::fabs(x[offset]) + 0.5f;  // never compare on an all-zero reference
      const auto x16 = ToBf16(x);
      std::vector<uint16_t> want(count, kBf16NaN);
      ReluSquaredParams p{count, x16.data() + offset, want.data(), ElementType::kBF16};
      ASSERT_TRUE(cpu::ReluSquared(p).ok());
      DeviceArray<uint16_t> d_x(x16), d_out(std::vector<uint16_t>(count + offset, kBf16NaN));
      p.x = d_x.get() + offset;
      p.out = d_out.get() + offset;
      ASSERT_TRUE(cuda::ReluSquared(p, nullptr).ok());
      const auto got = FromBf16(d_out.Download());
      EXPECT_TRUE(CloseInRelativeL2(std::vector<float>(got.begin() + offset, got.end()), FromBf16(want),
                                    kBf16Tolerance));
      p.out = d_x.get() + offset;  // in place
      ASSERT_TRUE(cuda::ReluSquared(p, nullptr).ok());
      const auto in_place = FromBf16(d_x.Download());
      EXPECT_TRUE(CloseInRelativeL2(std::vector<float>(in_place.begin() + offset, in_place.end()), FromBf16(want),
                                    kBf16Tolerance));
    }
  }
}

// Widths for the register kernel with one to eight slots, a guarded last slot
// (2688: 336 vectors over 192 threads) and the plain kernel (odd stride, 20000).
TEST_F(ElementwiseGpuTest, Bf16RmsNormMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [rows, width, stride] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1},
                                     {33, 1024, 1024},
                                     {5, 2688, 2688},
                                     {9, 4096, 4096 + 64},
                                     {3, 1000, 1001},
                                     {2, 16384, 16384},
                                     {2, 20000, 20000}}) {
    SCOPED_TRACE(testing::Message() << rows << "x" << width << " stride " << stride);
    const auto x = RandomRows(rng, rows, width, stride, -2.0f, 2.0f);
    const auto weight = RandomFloats(rng, width, 0.5f, 1.5f);
    std::vector<uint16_t> want(rows * width, kBf16NaN);
    RmsNormParams p{rows, width, 1e-5f, x.data(), stride, weight.data(), want.data()};
    p.out_type = ElementType::kBF16;
    ASSERT_TRUE(cpu::RmsNorm(p).ok());
    DeviceArray<float> d_x(x), d_w(weight);
    DeviceArray<uint16_t> d_out(std::vector<uint16_t>(rows * width, kBf16NaN));
    p.x = d_x.get();
    p.weight = d_w.get();
    p.out = d_out.get();
    ASSERT_TRUE(cuda::RmsNorm(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(FromBf16(d_out.Download()), FromBf16(want), kBf16Tolerance));
  }
}

// z a bf16 view of a wider row (the in_proj output), out over z in place (the
// layer loop's layout) and into a packed buffer; groups of one to eight slots
// a thread and the plain kernel (group 3, and an odd z stride).
TEST_F(ElementwiseGpuTest, Bf16GatedRmsNormMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [rows, width, group, z_stride] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{3, 8192, 1024, 18560},
                                              {2, 8192, 8192, 18560},
                                              {4, 2048, 2048, 2056},
                                              {5, 96, 3, 100},
                                              {6, 512, 256, 515}}) {
    SCOPED_TRACE(testing::Message() << rows << "x" << width << " group " << group << " z_stride " << z_stride);
    const auto y = RandomRows(rng, rows, width, width, -2.0f, 2.0f);
    const auto z = ToBf16(RandomRows(rng, rows, width, z_stride, -4.0f, 4.0f));
    const auto weight = RandomFloats(rng, width, 0.5f, 1.5f);
    std::vector<uint16_t> want(rows * width, kBf16NaN);
    GatedRmsNormParams p{rows, width, group, 1e-6f, y.data(), width, z.data(), z_stride, weight.data(), want.data()};
    p.type = ElementType::kBF16;
    ASSERT_TRUE(cpu::GatedRmsNorm(p).ok());
    DeviceArray<float> d_y(y), d_w(weight);
    DeviceArray<uint16_t> d_z(z), d_out(std::vector<uint16_t>(rows * width, kBf16NaN));
    p.y = d_y.get();
    p.z = d_z.get();
    p.weight = d_w.get();
    p.out = d_out.get();
    ASSERT_TRUE(cuda::GatedRmsNorm(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(FromBf16(d_out.Download()), FromBf16(want), kBf16Tolerance));
    p.out = d_z.get();  // over z
    p.out_stride = z_stride;
    ASSERT_TRUE(cuda::GatedRmsNorm(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(PackedRows(FromBf16(d_z.Download()), rows, width, z_stride), FromBf16(want),
                                  kBf16Tolerance));
  }
}

TEST_F(ElementwiseGpuTest, Bf16RopeMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [tokens, heads, head_dim, rotary, position0, stride] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>{1, 1, 2, 2, 0, 2},
        {33, 32, 128, 64, 0, 32 * 128 + 2 * 8 * 128},  // q within a (L, [q | k | v]) row
        {17, 8, 128, 128, 100000, 32 * 128 + 2 * 8 * 128}}) {
    SCOPED_TRACE(testing::Message() << tokens << " tokens, rotary " << rotary << " of " << head_dim);
    const auto x = ToBf16(RandomRows(rng, tokens, heads * head_dim, stride));
    std::vector<uint16_t> want = x;
    RopeParams p{tokens, heads, head_dim, rotary, 10000.0f, position0, want.data(), stride};
    p.type = ElementType::kBF16;
    ASSERT_TRUE(cpu::Rope(p).ok());
    DeviceArray<uint16_t> d_x(x);
    p.x = d_x.get();
    ASSERT_TRUE(cuda::Rope(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(PackedRows(FromBf16(d_x.Download()), tokens, heads * head_dim, stride),
                                  PackedRows(FromBf16(want), tokens, heads * head_dim, stride), kBf16Tolerance));
  }
}

}  // namespace
}  // namespace tessera
