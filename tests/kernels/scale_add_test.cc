// ScaleAdd against its formula, strided, with and without x (in-place scaling).
#include "kernels/scale_add.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::PackedRows;
using kernel_test::RandomRows;

constexpr double kScaleAddTolerance = 1e-7;

TEST(ScaleAddTest, ScaledXAddedToScaledYOnStridedRows) {
  std::mt19937 rng(31);
  constexpr int64_t kRows = 5, kWidth = 19, kXStride = 23, kYStride = 20;
  const std::vector<float> x = RandomRows(rng, kRows, kWidth, kXStride);
  std::vector<float> y = RandomRows(rng, kRows, kWidth, kYStride);
  std::vector<double> want(y.begin(), y.end());
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t c = 0; c < kWidth; ++c) want[r * kYStride + c] = 0.22 * x[r * kXStride + c] + 1.5 * y[r * kYStride + c];
  }
  ScaleAddParams p{kRows, kWidth, 0.22f, x.data(), kXStride, 1.5f, y.data(), kYStride};
  ASSERT_TRUE(cpu::ScaleAdd(p).ok());
  EXPECT_TRUE(CloseInRelativeL2(PackedRows(y, kRows, kWidth, kYStride), PackedRows(want, kRows, kWidth, kYStride),
                                kScaleAddTolerance));
}

TEST(ScaleAddTest, WithoutXScalesInPlace) {
  std::mt19937 rng(32);
  std::vector<float> y = RandomRows(rng, 3, 7, 7);
  std::vector<double> want(y.size());
  for (size_t i = 0; i < y.size(); ++i) want[i] = 12.0 * y[i];
  ScaleAddParams p;
  p.rows = 3;
  p.width = 7;
  p.beta = 12.0f;
  p.y = y.data();
  ASSERT_TRUE(cpu::ScaleAdd(p).ok());
  EXPECT_TRUE(CloseInRelativeL2(y, want, kScaleAddTolerance));
}

TEST(ScaleAddTest, BadParamsAreRefusedByName) {
  std::vector<float> y(8);
  ScaleAddParams p;
  p.rows = 2;
  p.width = 4;
  p.y = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::ScaleAdd(p), "y"));
  p.y = y.data();
  p.y_stride = 3;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::ScaleAdd(p), "y_stride"));
  p.y_stride = 0;
  p.rows = 0;
  EXPECT_TRUE(cpu::ScaleAdd(p).ok());
}

}  // namespace
}  // namespace tessera
