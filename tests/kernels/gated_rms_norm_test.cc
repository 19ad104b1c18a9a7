// GatedRmsNorm against g = y · silu(z), weight · g / sqrt(mean_group(g²) + eps)
// in double, over the full width (mamba2, bamba) and per group (nemotron_h);
// bf16 z and out: the fp32 result on the widened z, rounded once, bit for bit,
// also written over z in place (the layer loop's layout).
#include "kernels/gated_rms_norm.h"

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
using kernel_test::PackedRows;
using kernel_test::RoundedBf16;
using kernel_test::ToBf16;
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;

constexpr double kGatedRmsNormTolerance = 1e-5;

struct NormCase {
  int64_t rows, width, group_size, y_stride, z_stride;
};

struct NormInputs {
  std::vector<float> y, z, weight;
};

NormInputs MakeInputs(const NormCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  return NormInputs{RandomRows(rng, c.rows, c.width, c.y_stride, -2.0f, 2.0f),
                    RandomRows(rng, c.rows, c.width, c.z_stride, -3.0f, 3.0f),
                    RandomFloats(rng, c.width, 0.5f, 1.5f)};
}

std::vector<double> DirectReference(const NormCase& c, const NormInputs& in, float eps) {
  std::vector<double> want(c.rows * c.width);
  for (int64_t r = 0; r < c.rows; ++r) {
    std::vector<double> g(c.width);
    for (int64_t k = 0; k < c.width; ++k) {
      const double z = in.z[r * c.z_stride + k];
      g[k] = in.y[r * c.y_stride + k] * z / (1.0 + std::exp(-z));
    }
    for (int64_t g0 = 0; g0 < c.width; g0 += c.group_size) {
      double mean_square = 0.0;
      for (int64_t k = g0; k < g0 + c.group_size; ++k) mean_square += g[k] * g[k];
      mean_square /= c.group_size;
      for (int64_t k = g0; k < g0 + c.group_size; ++k) {
        want[r * c.width + k] = in.weight[k] * g[k] / std::sqrt(mean_square + eps);
      }
    }
  }
  return want;
}

GatedRmsNormParams MakeParams(const NormCase& c, const NormInputs& in, float* out) {
  GatedRmsNormParams p;
  p.rows = c.rows;
  p.width = c.width;
  p.group_size = c.group_size;
  p.eps = 1e-6f;
  p.y = in.y.data();
  p.y_stride = c.y_stride == c.width ? 0 : c.y_stride;
  p.z = in.z.data();
  p.z_stride = c.z_stride;
  p.weight = in.weight.data();
  p.out = out;
  return p;
}

TEST(GatedRmsNormTest, MatchesFormulaOverFullWidthAndPerGroup) {
  uint32_t seed = 1;
  for (const NormCase& c : {NormCase{1, 24, 24, 24, 24}, NormCase{5, 24, 8, 30, 50},
                            NormCase{3, 21, 7, 21, 22}, NormCase{2, 512, 512, 600, 512},
                            NormCase{2, 512, 64, 512, 512}}) {
    SCOPED_TRACE(absl::StrCat("rows=", c.rows, " width=", c.width, " group=", c.group_size));
    const NormInputs in = MakeInputs(c, seed++);
    std::vector<float> out = NaNs(c.rows * c.width);
    ASSERT_TRUE(cpu::GatedRmsNorm(MakeParams(c, in, out.data())).ok());
    EXPECT_TRUE(CloseInRelativeL2(out, DirectReference(c, in, 1e-6f), kGatedRmsNormTolerance));
  }
}

// Guards against a kernel that ignores group_size: grouping changes the result.
TEST(GatedRmsNormTest, GroupingChangesResult) {
  const NormCase per_group{2, 24, 8, 24, 24};
  const NormInputs in = MakeInputs(per_group, 7);
  NormCase full_width = per_group;
  full_width.group_size = 24;
  std::vector<float> out = NaNs(2 * 24);
  ASSERT_TRUE(cpu::GatedRmsNorm(MakeParams(per_group, in, out.data())).ok());
  EXPECT_FALSE(CloseInRelativeL2(out, DirectReference(full_width, in, 1e-6f), 1e-3));
}

TEST(GatedRmsNormTest, OutMayAliasY) {
  const NormCase c{3, 16, 4, 16, 20};
  const NormInputs in = MakeInputs(c, 8);
  std::vector<float> inout = in.y;
  GatedRmsNormParams p = MakeParams(c, in, inout.data());
  p.y = inout.data();
  ASSERT_TRUE(cpu::GatedRmsNorm(p).ok());
  EXPECT_TRUE(CloseInRelativeL2(inout, DirectReference(c, in, 1e-6f), kGatedRmsNormTolerance));
}

TEST(GatedRmsNormTest, Bf16IsTheFp32ResultRoundedOnceAlsoOverZ) {
  const NormCase c{4, 48, 16, 50, 70};
  NormInputs in = MakeInputs(c, 11);
  in.z = RoundedBf16(in.z);  // what a bf16 z holds
  std::vector<float> want = NaNs(c.rows * c.width);
  ASSERT_TRUE(cpu::GatedRmsNorm(MakeParams(c, in, want.data())).ok());
  const std::vector<float> want_rounded = RoundedBf16(want);

  std::vector<uint16_t> z16 = ToBf16(in.z);  // (rows, z_stride)
  std::vector<uint16_t> out16(c.rows * c.width, 0x7FC0);
  GatedRmsNormParams p = MakeParams(c, in, nullptr);
  p.type = ElementType::kBF16;
  p.z = z16.data();
  p.out = out16.data();
  ASSERT_TRUE(cpu::GatedRmsNorm(p).ok());
  EXPECT_EQ(FromBf16(out16), want_rounded);

  p.out = z16.data();  // over z, in place
  p.out_stride = c.z_stride;
  ASSERT_TRUE(cpu::GatedRmsNorm(p).ok());
  EXPECT_EQ(PackedRows(FromBf16(z16), c.rows, c.width, c.z_stride), want_rounded);
}

TEST(GatedRmsNormTest, RejectsInvalidParams) {
  const NormCase c{2, 24, 8, 24, 24};
  const NormInputs in = MakeInputs(c, 9);
  std::vector<float> out(2 * 24);
  const GatedRmsNormParams valid = MakeParams(c, in, out.data());
  ASSERT_TRUE(cpu::GatedRmsNorm(valid).ok());
  GatedRmsNormParams p = valid;
  p.group_size = 7;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::GatedRmsNorm(p), "group_size (7) must divide"));
  p = valid;
  p.z = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::GatedRmsNorm(p), "z must not be null"));
  p = valid;
  p.z_stride = 10;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::GatedRmsNorm(p), "z_stride"));
  p = valid;
  p.out = const_cast<float*>(in.z.data());  // over z at another stride
  p.out_stride = 30;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::GatedRmsNorm(p), "alias z"));
  p = valid;
  p.out = const_cast<float*>(in.y.data());  // over fp32 y, but bf16
  p.type = ElementType::kBF16;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::GatedRmsNorm(p), "alias y"));
  p = valid;
  p.out_stride = 5;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::GatedRmsNorm(p), "out_stride"));
}

}  // namespace
}  // namespace tessera
