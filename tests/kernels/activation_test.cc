// SiluMul and ReluSquared against their formulas in double, strided, in place,
// and at magnitudes where a careless exp overflows into NaN; bf16: the fp32
// result on the widened inputs, rounded once, bit for bit, also in place over
// the gate half of a fused [gate | up] row (the layer loop's layout).
#include "kernels/activation.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;

constexpr double kActivationTolerance = 1e-6;

double SiluReference(double x) { return x / (1.0 + std::exp(-x)); }

// gate and up as the two halves of one fused gate_up projection row.
TEST(SiluMulTest, MatchesFormulaOnFusedProjection) {
  constexpr int64_t kRows = 3, kWidth = 17, kStride = 2 * kWidth + 1;
  std::mt19937 rng(1);
  const std::vector<float> fused = RandomRows(rng, kRows, 2 * kWidth, kStride, -6.0f, 6.0f);
  std::vector<float> out = NaNs(kRows * kWidth);
  const SiluMulParams p{kRows, kWidth, fused.data(), kStride, fused.data() + kWidth, kStride,
                        out.data()};
  ASSERT_TRUE(cpu::SiluMul(p).ok());
  std::vector<double> want(kRows * kWidth);
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t c = 0; c < kWidth; ++c) {
      want[r * kWidth + c] = SiluReference(fused[r * kStride + c]) * fused[r * kStride + kWidth + c];
    }
  }
  EXPECT_TRUE(CloseInRelativeL2(out, want, kActivationTolerance));
}

TEST(SiluMulTest, InPlaceOverGateAndExtremeValues) {
  std::vector<float> gate = {-1000.0f, -88.0f, 0.0f, 1.5f, 88.0f, 1000.0f};
  const std::vector<float> up = {2.0f, 3.0f, 4.0f, -1.0f, 0.5f, 0.25f};
  std::vector<double> want(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) want[i] = SiluReference(gate[i]) * up[i];
  const SiluMulParams p{2, 3, gate.data(), 0, up.data(), 0, gate.data()};
  ASSERT_TRUE(cpu::SiluMul(p).ok());
  EXPECT_TRUE(CloseInRelativeL2(gate, want, kActivationTolerance));
}

TEST(ReluSquaredTest, MatchesFormulaInPlace) {
  std::mt19937 rng(2);
  std::vector<float> x = RandomFloats(rng, 101, -3.0f, 3.0f);
  std::vector<double> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = x[i] > 0 ? double{x[i]} * x[i] : 0.0;
  std::vector<float> out = NaNs(x.size());
  ASSERT_TRUE(cpu::ReluSquared({101, x.data(), out.data()}).ok());
  EXPECT_TRUE(CloseInRelativeL2(out, want, kActivationTolerance));
  ASSERT_TRUE(cpu::ReluSquared({101, x.data(), x.data()}).ok());
  EXPECT_EQ(x, out);
}

TEST(SiluMulTest, Bf16InPlaceOverTheGateHalfIsTheFp32ResultRounded) {
  constexpr int64_t kRows = 4, kWidth = 24, kStride = 2 * kWidth;
  std::mt19937 rng(3);
  const std::vector<float> fused = kernel_test::RoundedBf16(RandomRows(rng, kRows, 2 * kWidth, kStride, -6.0f, 6.0f));
  std::vector<float> want = NaNs(kRows * kWidth);
  ASSERT_TRUE(cpu::SiluMul({kRows, kWidth, fused.data(), kStride, fused.data() + kWidth, kStride, want.data()}).ok());
  std::vector<uint16_t> fused16 = kernel_test::ToBf16(fused);
  SiluMulParams p{kRows, kWidth, fused16.data(), kStride, fused16.data() + kWidth, kStride, fused16.data()};
  p.out_stride = kStride;
  p.type = ElementType::kBF16;
  ASSERT_TRUE(cpu::SiluMul(p).ok());
  EXPECT_EQ(kernel_test::PackedRows(kernel_test::FromBf16(fused16), kRows, kWidth, kStride),
            kernel_test::RoundedBf16(want));
}

TEST(ReluSquaredTest, Bf16InPlaceIsTheFp32ResultRounded) {
  std::mt19937 rng(4);
  const std::vector<float> x = kernel_test::RoundedBf16(RandomFloats(rng, 77, -3.0f, 3.0f));
  std::vector<float> want = NaNs(x.size());
  ASSERT_TRUE(cpu::ReluSquared({77, x.data(), want.data()}).ok());
  std::vector<uint16_t> x16 = kernel_test::ToBf16(x);
  ASSERT_TRUE(cpu::ReluSquared({77, x16.data(), x16.data(), ElementType::kBF16}).ok());
  EXPECT_EQ(kernel_test::FromBf16(x16), kernel_test::RoundedBf16(want));
}

TEST(ActivationTest, RejectsInvalidParams) {
  std::vector<float> a(8), b(8), out(8);
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cpu::SiluMul({2, 0, a.data(), 0, b.data(), 0, out.data()}), "width"));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cpu::SiluMul({2, 3, a.data(), 4, b.data(), 0, a.data()}), "alias gate"));
  SiluMulParams strided_out{2, 3, a.data(), 0, b.data(), 0, out.data()};
  strided_out.out_stride = 2;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SiluMul(strided_out), "out_stride"));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cpu::ReluSquared({4, a.data(), out.data(), static_cast<ElementType>(9)}), "type"));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cpu::SiluMul({2, 4, a.data(), 0, nullptr, 0, out.data()}), "up must not be null"));
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::ReluSquared({-1, a.data(), out.data()}), "count"));
}

}  // namespace
}  // namespace tessera
