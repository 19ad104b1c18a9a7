// Cast on the CPU against an independent reference: fp32 -> bf16 by choosing
// the nearer of the two neighbouring bf16 values in double arithmetic (ties to
// the even mantissa, overflow to inf), bf16 -> fp32 as the bits shifted up,
// same-type casts as copies. Every comparison is bit for bit, over random
// values of many binades, the rounding corner cases, and row strides whose
// padding must keep its sentinel.
#include "kernels/cast.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::IsInvalidArgumentMentioning;

constexpr uint16_t kPaddingBits = 0xABCD;  // bf16 output padding keeps this
constexpr uint32_t kPaddingF32 = 0x7FC0ABCDu;  // fp32 output padding keeps this (a NaN)

uint32_t BitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}
float FloatOf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// The magnitude that bf16 bits (sign cleared) encode, reading exponent 255 as
// 2^128 so that the neighbour above the largest finite bf16 is where the
// rounding would land, not an inf that always loses a distance comparison.
double Bf16Magnitude(uint32_t bits) {
  const int exponent = static_cast<int>(bits >> 7);
  const double mantissa = static_cast<double>(bits & 0x7F);
  if (exponent == 0) return std::ldexp(mantissa, -133);  // subnormal: m · 2^-126 / 128
  return std::ldexp(1.0 + mantissa / 128.0, exponent - 127);
}

// fp32 -> bf16 bits, round to nearest even, for finite and infinite inputs.
uint16_t ReferenceBf16(float f) {
  const uint32_t u = BitsOf(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t magnitude = u & 0x7FFFFFFFu;
  if (magnitude >= 0x7F800000u) return static_cast<uint16_t>(sign | 0x7F80u);  // inf
  const uint32_t below = magnitude >> 16;  // truncation: the neighbour toward zero
  const uint32_t above = below + 1;
  const double value = std::fabs(static_cast<double>(f));
  const double to_below = value - Bf16Magnitude(below);
  const double to_above = Bf16Magnitude(above) - value;
  uint32_t chosen = below;
  if (to_above < to_below || (to_above == to_below && (below & 1u) != 0)) chosen = above;
  if (chosen >= 0x7F80u) chosen = 0x7F80u;  // rounded past the largest finite value
  return static_cast<uint16_t>(sign | chosen);
}

struct CastCase {
  int64_t rows, width, in_stride, out_stride;  // a stride of 0 means width
};

const CastCase kCases[] = {
    {1, 1, 0, 0}, {7, 33, 40, 35}, {3, 17, 0, 19}, {5, 1000, 1003, 0}, {0, 5, 0, 0},
};

std::string Describe(const CastCase& c) {
  return absl::StrCat(c.rows, "x", c.width, " strides ", c.in_stride, ", ", c.out_stride);
}

// Random fp32 rows over many binades (NaN in the padding columns), with the
// rounding corner cases in the first row: ties to even down and up, both
// signs, subnormal ties, the largest float (rounds to inf), signed zeros, a
// value just below a tie, and infinities.
std::vector<float> F32Input(std::mt19937& rng, const CastCase& c, int64_t stride) {
  std::vector<float> v = kernel_test::RandomRows(rng, c.rows, c.width, stride);
  std::uniform_int_distribution<int> exponent(-140, 127);
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t col = 0; col < c.width; ++col) {
      v[r * stride + col] = std::ldexp(v[r * stride + col], exponent(rng));
    }
  }
  const uint32_t corners[] = {0x3F808000u, 0x3F818000u, 0xBF808000u, 0xBF818000u,
                              0x00008000u, 0x00018000u, 0x7F7FFFFFu, 0x80000000u,
                              0x00000000u, 0x3F80FFFFu, 0x3F807FFFu, 0x7F800000u,
                              0xFF800000u, 0x7F7F8000u, 0x7F7EFFFFu};
  for (int64_t col = 0; c.rows > 0 && col < c.width && col < 15; ++col) {
    v[col] = FloatOf(corners[col]);
  }
  return v;
}

TEST(CastTest, ReferenceRoundsTheCornerCasesAsIeeeDoes) {
  // Pin the reference itself on values whose answers are known by hand.
  EXPECT_EQ(ReferenceBf16(FloatOf(0x3F808000u)), 0x3F80);  // tie, even below
  EXPECT_EQ(ReferenceBf16(FloatOf(0x3F818000u)), 0x3F82);  // tie, even above
  EXPECT_EQ(ReferenceBf16(FloatOf(0xBF818000u)), 0xBF82);
  EXPECT_EQ(ReferenceBf16(FloatOf(0x00008000u)), 0x0000);  // subnormal tie
  EXPECT_EQ(ReferenceBf16(FloatOf(0x00018000u)), 0x0002);
  EXPECT_EQ(ReferenceBf16(FloatOf(0x3F807FFFu)), 0x3F80);  // just below a tie
  EXPECT_EQ(ReferenceBf16(FloatOf(0x3F80FFFFu)), 0x3F81);
  EXPECT_EQ(ReferenceBf16(FloatOf(0x7F7FFFFFu)), 0x7F80);  // largest float -> inf
  EXPECT_EQ(ReferenceBf16(FloatOf(0x7F7F8000u)), 0x7F80);  // tie above the largest bf16
  EXPECT_EQ(ReferenceBf16(FloatOf(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(ReferenceBf16(FloatOf(0x80000000u)), 0x8000);
}

TEST(CastTest, F32ToBf16RoundsToNearestEvenThroughStrides) {
  std::mt19937 rng(std::random_device{}());
  for (const CastCase& c : kCases) {
    SCOPED_TRACE(Describe(c));
    const int64_t in_stride = c.in_stride == 0 ? c.width : c.in_stride;
    const int64_t out_stride = c.out_stride == 0 ? c.width : c.out_stride;
    const std::vector<float> in = F32Input(rng, c, in_stride);
    std::vector<uint16_t> out(c.rows * out_stride, kPaddingBits);
    const CastParams p{c.rows, c.width, ElementType::kF32, in.data(), c.in_stride,
                       ElementType::kBF16, out.data(), c.out_stride};
    ASSERT_TRUE(cpu::Cast(p).ok());
    int64_t mismatches = 0;
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < out_stride; ++col) {
        const uint16_t want = col < c.width ? ReferenceBf16(in[r * in_stride + col]) : kPaddingBits;
        if (out[r * out_stride + col] != want && ++mismatches <= 5) {
          ADD_FAILURE() << "row " << r << " column " << col << " (input 0x" << std::hex
                        << BitsOf(in[r * in_stride + col]) << "): got 0x" << out[r * out_stride + col]
                        << ", want 0x" << want << std::dec;
        }
      }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

TEST(CastTest, Bf16ToF32IsExactThroughStrides) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<uint32_t> any_bits(0, 0xFFFF);
  for (const CastCase& c : kCases) {
    SCOPED_TRACE(Describe(c));
    const int64_t in_stride = c.in_stride == 0 ? c.width : c.in_stride;
    const int64_t out_stride = c.out_stride == 0 ? c.width : c.out_stride;
    std::vector<uint16_t> in(c.rows * in_stride);  // every bit pattern, NaN and inf included
    for (uint16_t& b : in) b = static_cast<uint16_t>(any_bits(rng));
    std::vector<float> out(c.rows * out_stride, FloatOf(kPaddingF32));
    const CastParams p{c.rows, c.width, ElementType::kBF16, in.data(), c.in_stride,
                       ElementType::kF32, out.data(), c.out_stride};
    ASSERT_TRUE(cpu::Cast(p).ok());
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < out_stride; ++col) {
        const uint32_t want = col < c.width ? static_cast<uint32_t>(in[r * in_stride + col]) << 16
                                            : kPaddingF32;
        ASSERT_EQ(BitsOf(out[r * out_stride + col]), want) << "row " << r << " column " << col;
      }
    }
  }
}

TEST(CastTest, RoundTripIsTheIdentityOnBf16Values) {
  std::mt19937 rng(std::random_device{}());
  const CastCase c{9, 77, 80, 0};
  const std::vector<float> in = F32Input(rng, c, c.in_stride);
  std::vector<uint16_t> bf16(c.rows * c.width);
  std::vector<float> back(c.rows * c.width);
  ASSERT_TRUE(cpu::Cast({c.rows, c.width, ElementType::kF32, in.data(), c.in_stride,
                         ElementType::kBF16, bf16.data(), 0})
                  .ok());
  ASSERT_TRUE(cpu::Cast({c.rows, c.width, ElementType::kBF16, bf16.data(), 0, ElementType::kF32,
                         back.data(), 0})
                  .ok());
  std::vector<uint16_t> again(c.rows * c.width);
  ASSERT_TRUE(cpu::Cast({c.rows, c.width, ElementType::kF32, back.data(), 0, ElementType::kBF16,
                         again.data(), 0})
                  .ok());
  EXPECT_EQ(again, bf16);
}

TEST(CastTest, SameTypeCopiesBitForBit) {
  std::mt19937 rng(std::random_device{}());
  for (const CastCase& c : kCases) {
    SCOPED_TRACE(Describe(c));
    const int64_t in_stride = c.in_stride == 0 ? c.width : c.in_stride;
    const int64_t out_stride = c.out_stride == 0 ? c.width : c.out_stride;
    const std::vector<float> in = F32Input(rng, c, in_stride);
    std::vector<float> out(c.rows * out_stride, FloatOf(kPaddingF32));
    ASSERT_TRUE(cpu::Cast({c.rows, c.width, ElementType::kF32, in.data(), c.in_stride,
                           ElementType::kF32, out.data(), c.out_stride})
                    .ok());
    std::vector<uint16_t> in16(c.rows * in_stride), out16(c.rows * out_stride, kPaddingBits);
    for (size_t i = 0; i < in16.size(); ++i) in16[i] = static_cast<uint16_t>(BitsOf(in[i]) >> 7);
    ASSERT_TRUE(cpu::Cast({c.rows, c.width, ElementType::kBF16, in16.data(), c.in_stride,
                           ElementType::kBF16, out16.data(), c.out_stride})
                    .ok());
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < out_stride; ++col) {
        const bool inside = col < c.width;
        ASSERT_EQ(BitsOf(out[r * out_stride + col]),
                  inside ? BitsOf(in[r * in_stride + col]) : kPaddingF32);
        ASSERT_EQ(out16[r * out_stride + col], inside ? in16[r * in_stride + col] : kPaddingBits);
      }
    }
  }
}

TEST(CastTest, InPlaceOnlyForTheSameTypeAndStride) {
  std::vector<float> a(4 * 8, 1.5f);
  // Same type, same stride (0 and 8 both mean 8): allowed, and nothing changes.
  EXPECT_TRUE(cpu::Cast({4, 8, ElementType::kF32, a.data(), 8, ElementType::kF32, a.data(), 0}).ok());
  EXPECT_EQ(a, std::vector<float>(4 * 8, 1.5f));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cpu::Cast({4, 8, ElementType::kF32, a.data(), 0, ElementType::kBF16, a.data(), 0}), "alias"));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cpu::Cast({2, 8, ElementType::kF32, a.data(), 16, ElementType::kF32, a.data(), 0}), "alias"));
  EXPECT_EQ(a, std::vector<float>(4 * 8, 1.5f));
}

TEST(CastTest, RejectsInvalidParams) {
  std::vector<float> a(64), b(64);
  const CastParams valid{2, 8, ElementType::kF32, a.data(), 0, ElementType::kBF16, b.data(), 0};
  ASSERT_TRUE(cpu::Cast(valid).ok());
  CastParams p = valid;
  p.out_stride = 7;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Cast(p), "Cast: out_stride must be 0 or >= 8"));
  p = valid;
  p.in_stride = 5;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Cast(p), "Cast: in_stride"));
  p = valid;
  p.in = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Cast(p), "in must not be null"));
  p = valid;
  p.width = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Cast(p), "width"));
  p = valid;
  p.rows = -1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Cast(p), "rows"));
  p = valid;
  p.in_type = static_cast<ElementType>(7);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Cast(p), "in_type must be kF32 or kBF16. Given: 7"));
  p = valid;
  p.out_type = static_cast<ElementType>(-1);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Cast(p), "out_type must be kF32 or kBF16. Given: -1"));
  p = valid;
  p.rows = 0;
  p.in = p.out = nullptr;  // nothing to do
  EXPECT_TRUE(cpu::Cast(p).ok());
}

}  // namespace
}  // namespace tessera
