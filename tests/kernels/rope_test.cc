// Rope against the rotate-half formula in double, with partial rotary (the tail
// of each head passes through bit for bit), a token stride, and global
// positions; bf16 x: the fp32 result on the widened values, rounded once.
#include "kernels/rope.h"

#include <cmath>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::RandomRows;

// fp32 phases of positions below ~100 against double.
constexpr double kRopeTolerance = 1e-5;

struct RopeCase {
  int64_t tokens, heads, head_dim, rotary_dim, position0, x_stride;
  float theta;
};

RopeParams MakeParams(const RopeCase& c, float* x) {
  RopeParams p;
  p.num_tokens = c.tokens;
  p.num_heads = c.heads;
  p.head_dim = c.head_dim;
  p.rotary_dim = c.rotary_dim;
  p.theta = c.theta;
  p.position0 = c.position0;
  p.x = x;
  p.x_stride = c.x_stride == c.heads * c.head_dim ? 0 : c.x_stride;
  return p;
}

// The rotated values, in double, of every head; `phase_in_fp32` forms the
// phase as transformers does (fp32 inv_freq times fp32 position).
std::vector<double> DirectReference(const RopeCase& c, const std::vector<float>& x,
                                    bool phase_in_fp32) {
  std::vector<double> want(x.begin(), x.end());
  const int64_t half = c.rotary_dim / 2;
  for (int64_t t = 0; t < c.tokens; ++t) {
    const int64_t position = c.position0 + t;
    for (int64_t h = 0; h < c.heads; ++h) {
      const float* in = x.data() + t * c.x_stride + h * c.head_dim;
      double* out = want.data() + t * c.x_stride + h * c.head_dim;
      for (int64_t i = 0; i < half; ++i) {
        double phi = position * std::pow(double{c.theta}, -2.0 * i / c.rotary_dim);
        if (phase_in_fp32) {
          const float inv_freq = 1.0f / std::pow(c.theta, static_cast<float>(2 * i) /
                                                              static_cast<float>(c.rotary_dim));
          phi = static_cast<float>(position) * inv_freq;
        }
        out[i] = in[i] * std::cos(phi) - double{in[i + half]} * std::sin(phi);
        out[i + half] = in[i + half] * std::cos(phi) + double{in[i]} * std::sin(phi);
      }
    }
  }
  return want;
}

// Runs Rope on random x; padding between tokens is NaN and must stay NaN.
void ExpectMatchesReference(const RopeCase& c, uint32_t seed, bool phase_in_fp32) {
  SCOPED_TRACE(absl::StrCat("T=", c.tokens, " H=", c.heads, " D=", c.head_dim,
                            " r=", c.rotary_dim, " pos0=", c.position0, " stride=", c.x_stride));
  std::mt19937 rng(seed);
  const int64_t row = c.heads * c.head_dim;
  const std::vector<float> x = RandomRows(rng, c.tokens, row, c.x_stride);
  std::vector<float> got = x;
  ASSERT_TRUE(cpu::Rope(MakeParams(c, got.data())).ok());
  const std::vector<double> want = DirectReference(c, x, phase_in_fp32);
  std::vector<float> rotated_got;
  std::vector<double> rotated_want;
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t j = 0; j < c.x_stride; ++j) {
      const int64_t i = t * c.x_stride + j;
      if (j >= row) {
        EXPECT_TRUE(std::isnan(got[i])) << "padding written at " << i;
      } else if (j % c.head_dim >= c.rotary_dim) {
        EXPECT_EQ(got[i], x[i]) << "pass-through channel changed at " << i;
      } else {
        rotated_got.push_back(got[i]);
        rotated_want.push_back(want[i]);
      }
    }
  }
  EXPECT_TRUE(CloseInRelativeL2(rotated_got, rotated_want, kRopeTolerance));
}

TEST(RopeTest, FullRotaryMatchesFormula) {
  ExpectMatchesReference({5, 3, 8, 8, 0, 24, 10000.0f}, 1, false);
  ExpectMatchesReference({1, 1, 2, 2, 7, 2, 10000.0f}, 2, false);
  ExpectMatchesReference({9, 4, 64, 64, 3, 256, 500000.0f}, 3, false);
}

TEST(RopeTest, PartialRotaryLeavesTailUnchanged) {
  ExpectMatchesReference({6, 3, 10, 4, 37, 33, 10000.0f}, 4, false);  // stride > H·D
  ExpectMatchesReference({4, 2, 16, 8, 0, 32, 10000.0f}, 5, false);   // bamba: half of D
}

TEST(RopeTest, PositionOffsetEqualsLaterRowsOfLongerRun) {
  const RopeCase shard{4, 2, 8, 6, /*position0=*/5, 16, 10000.0f};
  const RopeCase whole{9, 2, 8, 6, /*position0=*/0, 16, 10000.0f};
  std::mt19937 rng(6);
  std::vector<float> all = RandomRows(rng, whole.tokens, 16, 16);
  std::vector<float> tail(all.begin() + 5 * 16, all.end());
  ASSERT_TRUE(cpu::Rope(MakeParams(whole, all.data())).ok());
  ASSERT_TRUE(cpu::Rope(MakeParams(shard, tail.data())).ok());
  EXPECT_EQ(tail, std::vector<float>(all.begin() + 5 * 16, all.end()));
}

// Far positions: the fp32 phase carries an error of ~position·2⁻²⁴ radians;
// the kernel must round it as transformers does, not compute it exactly.
TEST(RopeTest, LongPositionsRoundPhaseLikeTransformers) {
  ExpectMatchesReference({3, 2, 16, 16, 131000, 32, 10000.0f}, 7, /*phase_in_fp32=*/true);
}

TEST(RopeTest, Bf16IsTheFp32ResultRoundedOnce) {
  const RopeCase c{5, 3, 16, 8, 40, 56, 10000.0f};  // strided, partial rotary
  std::mt19937 rng(8);
  std::vector<float> want = kernel_test::RoundedBf16(RandomRows(rng, c.tokens, c.heads * c.head_dim, c.x_stride));
  std::vector<uint16_t> x16 = kernel_test::ToBf16(want);
  ASSERT_TRUE(cpu::Rope(MakeParams(c, want.data())).ok());
  RopeParams p = MakeParams(c, nullptr);
  p.x = x16.data();
  p.type = ElementType::kBF16;
  ASSERT_TRUE(cpu::Rope(p).ok());
  const std::vector<float> got = kernel_test::FromBf16(x16);
  const std::vector<float> rounded = kernel_test::RoundedBf16(want);
  ASSERT_EQ(got.size(), rounded.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(rounded[i])) continue;  // padding
    EXPECT_EQ(got[i], rounded[i]) << i;
  }
}

TEST(RopeTest, RejectsInvalidParams) {
  std::vector<float> x(2 * 8);
  const RopeCase c{2, 1, 8, 8, 0, 8, 10000.0f};
  ASSERT_TRUE(cpu::Rope(MakeParams(c, x.data())).ok());
  RopeParams p = MakeParams(c, x.data());
  p.rotary_dim = 5;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Rope(p), "rotary_dim"));
  p.rotary_dim = 10;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Rope(p), "Given: 10"));
  p = MakeParams(c, x.data());
  p.x = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Rope(p), "x must not be null"));
  p = MakeParams(c, x.data());
  p.theta = 0.0f;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Rope(p), "theta"));
  p = MakeParams(c, x.data());
  p.type = static_cast<ElementType>(5);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Rope(p), "type"));
}

}  // namespace
}  // namespace tessera
