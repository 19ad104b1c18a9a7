// DtSoftplus against clamp(log1p(exp(raw + bias)), dt_min, dt_max) in double,
// including torch's pass-through above 20, huge values and a finite clamp.
#include "kernels/dt_softplus.h"

#include <cmath>
#include <limits>
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

constexpr double kDtSoftplusTolerance = 1e-6;
constexpr float kInf = std::numeric_limits<float>::infinity();

struct DtInputs {
  int64_t rows, heads, stride;
  std::vector<float> raw;   // (rows, stride) holding (rows, H)
  std::vector<float> bias;  // (H)
};

std::vector<float> RunDtSoftplus(const DtInputs& in, float dt_min, float dt_max) {
  std::vector<float> out = NaNs(in.rows * in.heads);
  DtSoftplusParams p;
  p.rows = in.rows;
  p.num_heads = in.heads;
  p.dt_raw = in.raw.data();
  p.dt_stride = in.stride;
  p.dt_bias = in.bias.data();
  p.dt_min = dt_min;
  p.dt_max = dt_max;
  p.out = out.data();
  const absl::Status status = cpu::DtSoftplus(p);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

std::vector<double> DirectReference(const DtInputs& in, double dt_min, double dt_max) {
  std::vector<double> want(in.rows * in.heads);
  for (int64_t t = 0; t < in.rows; ++t) {
    for (int64_t h = 0; h < in.heads; ++h) {
      const double v = double{in.raw[t * in.stride + h]} + in.bias[h];
      const double softplus = v > 20.0 ? v : std::log1p(std::exp(v));
      want[t * in.heads + h] = std::min(std::max(softplus, dt_min), dt_max);
    }
  }
  return want;
}

DtInputs MakeInputs(int64_t rows, int64_t heads, int64_t stride, float lo, float hi,
                    uint32_t seed) {
  std::mt19937 rng(seed);
  return DtInputs{rows, heads, stride, RandomRows(rng, rows, heads, stride, lo, hi),
                  RandomFloats(rng, heads, -1.0f, 1.0f)};
}

TEST(DtSoftplusTest, MatchesFormulaAcrossThreshold) {
  const DtInputs in = MakeInputs(6, 5, 8, -30.0f, 30.0f, 1);
  EXPECT_TRUE(CloseInRelativeL2(RunDtSoftplus(in, 0.0f, kInf), DirectReference(in, 0.0, kInf),
                                kDtSoftplusTolerance));
}

TEST(DtSoftplusTest, ClampsToTimeStepLimit) {
  const DtInputs in = MakeInputs(9, 3, 3, -6.0f, 2.0f, 2);
  const std::vector<float> got = RunDtSoftplus(in, 0.01f, 0.5f);
  EXPECT_TRUE(CloseInRelativeL2(got, DirectReference(in, 0.01f, 0.5f), kDtSoftplusTolerance));
  int clamped_low = 0, clamped_high = 0;
  for (float v : got) {
    EXPECT_GE(v, 0.01f);
    EXPECT_LE(v, 0.5f);
    clamped_low += v == 0.01f;
    clamped_high += v == 0.5f;
  }
  EXPECT_GT(clamped_low, 0);  // the inputs reach both bounds
  EXPECT_GT(clamped_high, 0);
}

TEST(DtSoftplusTest, LargeAndTinyValues) {
  const DtInputs in{1, 4, 4, {1e30f, 20.5f, -100.0f, 88.0f}, {0.0f, 0.0f, 0.0f, 1.0f}};
  const std::vector<float> got = RunDtSoftplus(in, 0.0f, kInf);
  EXPECT_EQ(got[0], 1e30f);   // no exp overflow
  EXPECT_EQ(got[1], 20.5f);   // passed through above the threshold
  EXPECT_GT(got[2], 0.0f);    // log1p(exp(-100)) ≈ 3.7e-44, not 0 and not NaN
  EXPECT_LT(got[2], 1e-40f);
  EXPECT_EQ(got[3], 89.0f);
}

// bf16 dt_raw (the in_proj's bf16 dt columns): the fp32 result on the widened values.
TEST(DtSoftplusTest, Bf16RawIsWidenedExactly) {
  DtInputs in = MakeInputs(7, 6, 10, -25.0f, 25.0f, 4);
  in.raw = kernel_test::RoundedBf16(in.raw);
  const std::vector<float> want = RunDtSoftplus(in, 0.001f, kInf);
  const std::vector<uint16_t> raw16 = kernel_test::ToBf16(in.raw);
  std::vector<float> got = NaNs(in.rows * in.heads);
  DtSoftplusParams p{in.rows, in.heads, raw16.data(), in.stride, in.bias.data(), 0.001f, kInf, got.data()};
  p.dt_raw_type = ElementType::kBF16;
  ASSERT_TRUE(cpu::DtSoftplus(p).ok());
  EXPECT_EQ(got, want);
}

TEST(DtSoftplusTest, RejectsInvalidParams) {
  const DtInputs in = MakeInputs(2, 3, 3, -1.0f, 1.0f, 3);
  std::vector<float> out(6);
  DtSoftplusParams p{2, 3, in.raw.data(), 0, in.bias.data(), 0.5f, 0.1f, out.data()};
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DtSoftplus(p), "dt_min <= dt_max"));
  p.dt_min = 0.0f;
  p.dt_bias = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DtSoftplus(p), "dt_bias"));
  p.dt_bias = in.bias.data();
  p.dt_stride = 2;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DtSoftplus(p), "dt_stride"));
}

}  // namespace
}  // namespace tessera
