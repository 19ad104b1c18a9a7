// cuda::Cast on fresh random inputs of awkward shapes (odd widths, row strides
// past the width, output padding that must keep its value): every pair of
// types, bit for bit against the host's round-to-nearest-even and against the
// CPU reference, over many binades and the rounding corner cases (ties to even
// down and up, subnormal ties, the largest float rounding to inf, signed
// zeros); then the aliasing rule and the parameter checks.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cast.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::RandomRows;
using kernel_test::IsInvalidArgumentMentioning;

constexpr float kPadding = 7.0f;           // fp32 output padding must keep this value
constexpr uint16_t kPaddingBits = 0xABCD;  // bf16 output padding likewise

class CastGpuTest : public GpuTest {};

// Bitwise equality, so -inf, signed zeros and (unexpected) NaNs all count.
template <typename T>
bool SameBits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(T) * a.size()) == 0;
}

struct CastCase {
  int64_t rows, width, in_stride, out_stride;  // a stride of 0 means width
};

// The last three take the 16-byte vector path (widths and strides multiples of 8).
const CastCase kCastCases[] = {
    {1, 1, 0, 0},       {7, 33, 40, 35}, {3, 17, 0, 19}, {64, 4099, 4100, 4103}, {300, 1000, 0, 0},
    {5, 4096, 4104, 4096}, {9, 24, 32, 40},
};

// Random rows over many binades, with the rounding corner cases written into
// the first row: ties to even (down and up), a subnormal tie, the largest
// float (rounds to inf), signed zeros.
std::vector<float> CastInput(std::mt19937& rng, int64_t rows, int64_t width, int64_t stride) {
  std::vector<float> v = RandomRows(rng, rows, width, stride);
  std::uniform_int_distribution<int> exponent(-30, 30);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < width; ++c) {
      v[r * stride + c] = std::ldexp(v[r * stride + c], exponent(rng));
    }
  }
  const uint32_t corners[] = {0x3F808000u, 0x3F818000u, 0xBF808000u, 0xBF818000u, 0x00008000u,
                              0x00018000u, 0x7F7FFFFFu, 0x80000000u, 0x00000000u, 0x3F80FFFFu};
  for (int64_t c = 0; c < width && c < 10; ++c) std::memcpy(&v[c], &corners[c], sizeof(float));
  return v;
}

CastParams Params(const CastCase& c, ElementType in_type, const void* in, ElementType out_type,
                  void* out, int64_t out_stride) {
  return CastParams{c.rows, c.width, in_type, in, c.in_stride, out_type, out, out_stride};
}

TEST_F(CastGpuTest, F32ToBf16AndBackMatchTheHostBitForBit) {
  std::mt19937 rng(std::random_device{}());
  for (const CastCase& c : kCastCases) {
    SCOPED_TRACE(testing::Message()
                 << c.rows << "x" << c.width << " strides " << c.in_stride << ", " << c.out_stride);
    const int64_t in_stride = c.in_stride == 0 ? c.width : c.in_stride;
    const int64_t out_stride = c.out_stride == 0 ? c.width : c.out_stride;
    const auto in = CastInput(rng, c.rows, c.width, in_stride);
    DeviceArray<float> d_in(in);
    DeviceArray<uint16_t> d_bf16(std::vector<uint16_t>(c.rows * out_stride, kPaddingBits));
    absl::Status status = cuda::Cast(
        Params(c, ElementType::kF32, d_in.get(), ElementType::kBF16, d_bf16.get(), c.out_stride),
        nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const std::vector<uint16_t> bits = d_bf16.Download();
    int64_t mismatches = 0;
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < out_stride; ++col) {
        const uint16_t want =
            col < c.width ? gpu_test::ToBf16Bits(in[r * in_stride + col]) : kPaddingBits;
        if (bits[r * out_stride + col] != want && ++mismatches <= 5) {
          ADD_FAILURE() << "f32 -> bf16 row " << r << " column " << col << ": got 0x" << std::hex
                        << bits[r * out_stride + col] << ", want 0x" << want << std::dec;
        }
      }
    }
    EXPECT_EQ(mismatches, 0);
    // The CPU reference gives the same bits.
    std::vector<uint16_t> cpu_bits(c.rows * out_stride, kPaddingBits);
    ASSERT_TRUE(cpu::Cast(Params(c, ElementType::kF32, in.data(), ElementType::kBF16,
                                 cpu_bits.data(), c.out_stride))
                    .ok());
    EXPECT_TRUE(SameBits(bits, cpu_bits)) << "GPU and CPU f32 -> bf16 differ";

    // Back to fp32 through a third stride: exactly RoundBf16 of the input.
    const int64_t back_stride = c.width + 3;
    DeviceArray<float> d_back(std::vector<float>(c.rows * back_stride, kPadding));
    status = cuda::Cast(CastParams{c.rows, c.width, ElementType::kBF16, d_bf16.get(), c.out_stride,
                                   ElementType::kF32, d_back.get(), back_stride},
                        nullptr);
    ASSERT_TRUE(status.ok()) << status;
    std::vector<float> want(c.rows * back_stride, kPadding);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < c.width; ++col) {
        want[r * back_stride + col] = gpu_test::RoundBf16(in[r * in_stride + col]);
      }
    }
    EXPECT_TRUE(SameBits(d_back.Download(), want));
  }
}

TEST_F(CastGpuTest, SameTypeCopiesExactly) {
  std::mt19937 rng(std::random_device{}());
  for (const CastCase& c : kCastCases) {
    SCOPED_TRACE(testing::Message()
                 << c.rows << "x" << c.width << " strides " << c.in_stride << ", " << c.out_stride);
    const int64_t in_stride = c.in_stride == 0 ? c.width : c.in_stride;
    const int64_t out_stride = c.out_stride == 0 ? c.width : c.out_stride;
    const auto in = CastInput(rng, c.rows, c.width, in_stride);
    std::vector<float> want(c.rows * out_stride, kPadding);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < c.width; ++col) {
        want[r * out_stride + col] = in[r * in_stride + col];
      }
    }
    DeviceArray<float> d_in(in), d_out(std::vector<float>(c.rows * out_stride, kPadding));
    absl::Status status = cuda::Cast(
        Params(c, ElementType::kF32, d_in.get(), ElementType::kF32, d_out.get(), c.out_stride),
        nullptr);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(SameBits(d_out.Download(), want)) << "f32 -> f32";

    const std::vector<uint16_t> in16 = gpu_test::ToBf16(in);  // padding NaNs: any bits will do
    std::vector<uint16_t> want16(c.rows * out_stride, kPaddingBits);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < c.width; ++col) {
        want16[r * out_stride + col] = in16[r * in_stride + col];
      }
    }
    DeviceArray<uint16_t> d_in16(in16),
        d_out16(std::vector<uint16_t>(c.rows * out_stride, kPaddingBits));
    status = cuda::Cast(
        Params(c, ElementType::kBF16, d_in16.get(), ElementType::kBF16, d_out16.get(), c.out_stride),
        nullptr);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(SameBits(d_out16.Download(), want16)) << "bf16 -> bf16";
  }
}

TEST_F(CastGpuTest, RejectsBadParams) {
  DeviceArray<float> d_a(std::vector<float>(64, 1.0f)), d_b(std::vector<float>(64, 1.0f));
  const CastParams valid{2, 8, ElementType::kF32, d_a.get(), 0, ElementType::kBF16, d_b.get(), 0};
  ASSERT_TRUE(cuda::Cast(valid, nullptr).ok());
  CastParams p = valid;
  p.out_stride = 7;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Cast(p, nullptr), "Cast: out_stride"));
  p = valid;
  p.in_stride = 5;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Cast(p, nullptr), "Cast: in_stride"));
  p = valid;
  p.in = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Cast(p, nullptr), "in"));
  p = valid;
  p.width = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Cast(p, nullptr), "width"));
  p = valid;
  p.out = d_a.get();  // in place across types
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Cast(p, nullptr), "alias"));
  p = valid;
  p.in_type = static_cast<ElementType>(7);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Cast(p, nullptr), "in_type"));
  p = valid;
  p.out_type = static_cast<ElementType>(7);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Cast(p, nullptr), "out_type"));
  // The same type in place with equal strides is allowed (and a no-op).
  EXPECT_TRUE(cuda::Cast({2, 8, ElementType::kF32, d_a.get(), 8, ElementType::kF32, d_a.get(), 0},
                         nullptr)
                  .ok());
  EXPECT_TRUE(SameBits(d_a.Download(), std::vector<float>(64, 1.0f)));
}

}  // namespace
}  // namespace tessera
