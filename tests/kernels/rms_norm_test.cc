// RmsNorm against weight · x / sqrt(mean(x²) + eps) in double, strided and in
// place; a bf16 out is the fp32 result rounded once, bit for bit.
#include "kernels/rms_norm.h"

#include <cmath>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::FromBf16;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;

constexpr double kRmsNormTolerance = 1e-5;

std::vector<double> DirectReference(const std::vector<float>& x, const std::vector<float>& weight,
                                    int64_t rows, int64_t width, int64_t stride, float eps) {
  std::vector<double> want(rows * width);
  for (int64_t r = 0; r < rows; ++r) {
    double mean_square = 0.0;
    for (int64_t c = 0; c < width; ++c) mean_square += double{x[r * stride + c]} * x[r * stride + c];
    mean_square /= width;
    for (int64_t c = 0; c < width; ++c) {
      want[r * width + c] = weight[c] * (x[r * stride + c] / std::sqrt(mean_square + eps));
    }
  }
  return want;
}

TEST(RmsNormTest, MatchesFormula) {
  struct Case {
    int64_t rows, width, stride;
    float eps;
  };
  uint32_t seed = 1;
  for (const Case& c : {Case{1, 1, 1, 1e-5f}, Case{5, 7, 7, 1e-6f}, Case{3, 257, 300, 1e-5f},
                        Case{2, 4096, 4096, 1e-5f}}) {
    SCOPED_TRACE(absl::StrCat("rows=", c.rows, " width=", c.width, " stride=", c.stride));
    std::mt19937 rng(seed++);
    const std::vector<float> x = RandomRows(rng, c.rows, c.width, c.stride, -3.0f, 3.0f);
    const std::vector<float> weight = RandomFloats(rng, c.width, 0.5f, 1.5f);
    std::vector<float> out = NaNs(c.rows * c.width);
    RmsNormParams p{c.rows, c.width, c.eps, x.data(), c.stride == c.width ? 0 : c.stride,
                    weight.data(), out.data()};
    ASSERT_TRUE(cpu::RmsNorm(p).ok());
    EXPECT_TRUE(CloseInRelativeL2(out, DirectReference(x, weight, c.rows, c.width, c.stride,
                                                       c.eps),
                                  kRmsNormTolerance));
  }
}

TEST(RmsNormTest, InPlace) {
  std::mt19937 rng(9);
  const std::vector<float> x = RandomFloats(rng, 4 * 33, -2.0f, 2.0f);
  const std::vector<float> weight = RandomFloats(rng, 33);
  std::vector<float> inout = x;
  RmsNormParams p{4, 33, 1e-5f, inout.data(), 0, weight.data(), inout.data()};
  ASSERT_TRUE(cpu::RmsNorm(p).ok());
  EXPECT_TRUE(CloseInRelativeL2(inout, DirectReference(x, weight, 4, 33, 33, 1e-5f),
                                kRmsNormTolerance));
}

TEST(RmsNormTest, Bf16OutIsTheFp32ResultRoundedOnce) {
  std::mt19937 rng(10);
  constexpr int64_t kRows = 5, kWidth = 96, kStride = 100;
  const std::vector<float> x = RandomRows(rng, kRows, kWidth, kStride, -3.0f, 3.0f);
  const std::vector<float> weight = RandomFloats(rng, kWidth, 0.5f, 1.5f);
  std::vector<float> want = NaNs(kRows * kWidth);
  RmsNormParams p{kRows, kWidth, 1e-5f, x.data(), kStride, weight.data(), want.data()};
  ASSERT_TRUE(cpu::RmsNorm(p).ok());
  std::vector<uint16_t> got(kRows * kWidth, 0x7FC0);  // NaN
  p.out = got.data();
  p.out_type = ElementType::kBF16;
  ASSERT_TRUE(cpu::RmsNorm(p).ok());
  EXPECT_EQ(FromBf16(got), kernel_test::RoundedBf16(want));
}

TEST(RmsNormTest, RejectsInvalidParams) {
  std::vector<float> x(2 * 8), weight(8), out(2 * 8);
  const RmsNormParams valid{2, 8, 1e-5f, x.data(), 0, weight.data(), out.data()};
  ASSERT_TRUE(cpu::RmsNorm(valid).ok());
  RmsNormParams p = valid;
  p.width = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::RmsNorm(p), "width must be > 0. Given: 0"));
  p = valid;
  p.eps = -1.0f;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::RmsNorm(p), "eps"));
  p = valid;
  p.weight = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::RmsNorm(p), "weight"));
  p = valid;
  p.out = x.data();
  p.x_stride = 9;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::RmsNorm(p), "alias"));
  p = valid;
  p.out = x.data();  // in place, but into bf16
  p.out_type = ElementType::kBF16;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::RmsNorm(p), "alias"));
  p = valid;
  p.out_type = static_cast<ElementType>(7);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::RmsNorm(p), "out_type"));
}

}  // namespace
}  // namespace tessera
