// cuda::Linear for both operand types on fresh random inputs of awkward shapes
// (odd sizes, row strides past the width with NaN padding in x, padding in y
// that must keep its value, bias, accumulate; up to 8 rows with K a multiple of
// 8 for the bf16 GEMV). fp32 (Sgemm, no TF32) against
// the OpenBLAS reference. bf16 (GemmEx, fp32 accumulation) follows the
// flash-attention rule: its error against a float64 product of the unrounded
// inputs is at most twice that of a plain implementation that rounds its
// inputs and its output to bf16. A bf16 y (y_type) holds the fp32 y rounded
// once (the bias rounded into it first), its padding untouched.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/linear.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::CloseInRelativeL2;
using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::NaNs;
using gpu_test::RandomFloats;
using gpu_test::RandomRows;
using kernel_test::IsInvalidArgumentMentioning;

constexpr double kTolerance = 1e-5;  // fp32 against the fp32 CPU reference
constexpr float kPadding = 7.0f;     // y padding columns must keep this value

class LinearGpuTest : public GpuTest {};

struct LinearCase {
  int64_t rows, in, out, x_pad, y_pad;
  bool bias, accumulate;
};

const LinearCase kCases[] = {
    {1, 1, 1, 0, 0, false, false},       {1, 64, 33, 0, 0, true, false},
    {7, 33, 17, 3, 5, true, true},       {37, 515, 263, 5, 7, true, true},
    {130, 257, 65, 1, 0, false, true},   {130, 257, 65, 0, 0, false, true},
    {256, 1024, 512, 0, 0, false, false}, {64, 1024, 1000, 8, 24, true, false},
    {300, 777, 1001, 2, 3, true, false}, {300, 512, 2048 + 256, 0, 0, true, true},
    // Decode rows (<= 8) with K a multiple of 8: the GEMV kernel. K not a
    // multiple of its step (32), N not of its tile (16), strides of 8.
    {1, 4096, 1000, 0, 0, false, false}, {1, 72, 33, 8, 3, true, true},
    {2, 1032, 263, 16, 0, true, false},  {3, 8, 40, 0, 5, false, true},
    {5, 2056, 17, 8, 1, false, false},   {8, 1024, 1001, 0, 7, true, true},
    {8, 21504, 64, 0, 0, false, true},   {6, 4096, 2048 + 16, 24, 0, true, false},
};

std::string Describe(const LinearCase& c) {
  return absl::StrCat(c.rows, "x", c.in, " -> ", c.out, " pads ", c.x_pad, ",", c.y_pad, " bias ",
                      c.bias, " accumulate ", c.accumulate);
}

// y with padding columns kPadding and, in the (rows, out) part, random values
// to accumulate onto or NaN (every element must then be written).
std::vector<float> LinearOutput(std::mt19937& rng, const LinearCase& c, int64_t y_stride) {
  std::vector<float> y(c.rows * y_stride, kPadding);
  const auto init = c.accumulate ? RandomFloats(rng, c.rows * c.out) : NaNs(c.rows * c.out);
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t n = 0; n < c.out; ++n) y[r * y_stride + n] = init[r * c.out + n];
  }
  return y;
}

// The (rows, out) part of a strided y, checking that the padding kept kPadding.
std::vector<float> LinearValues(const std::vector<float>& y, const LinearCase& c,
                                int64_t y_stride) {
  std::vector<float> values(c.rows * c.out);  // (rows, out)
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t n = 0; n < y_stride; ++n) {
      if (n < c.out) {
        values[r * c.out + n] = y[r * y_stride + n];
      } else {
        EXPECT_EQ(y[r * y_stride + n], kPadding) << "padding of row " << r << " overwritten";
      }
    }
  }
  return values;
}

LinearParams Params(const LinearCase& c, ElementType type, const void* x, int64_t x_stride,
                    const void* w, const float* bias, float* y, int64_t y_stride) {
  LinearParams p;
  p.rows = c.rows;
  p.in_features = c.in;
  p.out_features = c.out;
  p.type = type;
  p.x = x;
  p.x_stride = x_stride;
  p.weight = w;
  p.bias = c.bias ? bias : nullptr;
  p.y = y;
  p.y_stride = y_stride;
  p.accumulate = c.accumulate;
  return p;
}

TEST_F(LinearGpuTest, F32MatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const LinearCase& c : kCases) {
    SCOPED_TRACE(Describe(c));
    const int64_t x_stride = c.in + c.x_pad, y_stride = c.out + c.y_pad;
    const auto x = RandomRows(rng, c.rows, c.in, x_stride);  // (rows, in), NaN padding
    const auto w = RandomFloats(rng, c.out * c.in);          // (out, in)
    const auto bias = RandomFloats(rng, c.out);
    const auto y = LinearOutput(rng, c, y_stride);
    std::vector<float> want = y;
    ASSERT_TRUE(cpu::Linear(Params(c, ElementType::kF32, x.data(), x_stride, w.data(), bias.data(),
                                   want.data(), y_stride))
                    .ok());
    DeviceArray<float> d_x(x), d_w(w), d_bias(bias), d_y(y);
    const absl::Status status = cuda::Linear(
        Params(c, ElementType::kF32, d_x.get(), x_stride, d_w.get(), d_bias.get(), d_y.get(),
               y_stride),
        nullptr);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(CloseInRelativeL2(LinearValues(d_y.Download(), c, y_stride),
                                  LinearValues(want, c, y_stride), kTolerance));
  }
}

TEST_F(LinearGpuTest, Bf16WithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  for (const LinearCase& c : kCases) {
    // An L2 over a handful of outputs is a coin toss: the plain output
    // rounding can land nearer the exact value than the unrounded product.
    if (c.rows * c.out < 32) continue;
    SCOPED_TRACE(Describe(c));
    const int64_t x_stride = c.in + c.x_pad, y_stride = c.out + c.y_pad;
    const auto x = RandomRows(rng, c.rows, c.in, x_stride);  // (rows, in), NaN padding
    const auto w = RandomFloats(rng, c.out * c.in);          // (out, in)
    const auto bias = RandomFloats(rng, c.out);
    const auto y = LinearOutput(rng, c, y_stride);
    // float64 on the unrounded x and W; the plain bf16 implementation rounds
    // x and W, sums exactly, and rounds y. Bias and the accumulated y are fp32
    // operands in both.
    const auto xr = gpu_test::RoundedBf16(x), wr = gpu_test::RoundedBf16(w);
    std::vector<double> ref(c.rows * c.out);
    std::vector<float> plain(c.rows * c.out);
    for (int64_t i = 0; i < c.rows; ++i) {
      for (int64_t j = 0; j < c.out; ++j) {
        double exact = 0.0, rounded = 0.0;
        for (int64_t l = 0; l < c.in; ++l) {
          exact += double{x[i * x_stride + l]} * w[j * c.in + l];
          rounded += double{xr[i * x_stride + l]} * wr[j * c.in + l];
        }
        const double add = (c.bias ? bias[j] : 0.0) + (c.accumulate ? y[i * y_stride + j] : 0.0);
        ref[i * c.out + j] = exact + add;
        plain[i * c.out + j] = gpu_test::RoundBf16(static_cast<float>(rounded + add));
      }
    }
    DeviceArray<uint16_t> d_x(gpu_test::ToBf16(x)), d_w(gpu_test::ToBf16(w));
    DeviceArray<float> d_bias(bias), d_y(y);
    const absl::Status status = cuda::Linear(
        Params(c, ElementType::kBF16, d_x.get(), x_stride, d_w.get(), d_bias.get(), d_y.get(),
               y_stride),
        nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const std::vector<float> got = LinearValues(d_y.Download(), c, y_stride);
    for (float v : got) ASSERT_TRUE(std::isfinite(v));
    const double err = gpu_test::RelativeL2(got, ref);
    const double plain_err = gpu_test::RelativeL2(plain, ref);
    RecordProperty(absl::StrCat("bf16_error_", c.rows, "x", c.in, "x", c.out), std::to_string(err));
    std::printf("Linear bf16: %s: relative L2 %.3g, plain bf16 %.3g\n", Describe(c).c_str(), err,
                plain_err);
    EXPECT_GT(plain_err, 0.0);
    EXPECT_LE(err, 2.0 * plain_err);
  }
}

TEST_F(LinearGpuTest, Bf16OutputIsTheFp32OutputRounded) {
  constexpr double kBf16OutTolerance = 4e-3;  // one bf16 rounding of y (and of the bias laid into it)
  constexpr uint16_t kPaddingBits = 0xABCD;
  std::mt19937 rng(std::random_device{}());
  for (const LinearCase& c : kCases) {
    if (c.rows * c.out < 32) continue;
    SCOPED_TRACE(Describe(c));
    const int64_t x_stride = c.in + c.x_pad, y_stride = c.out + c.y_pad;
    const auto x = RandomRows(rng, c.rows, c.in, x_stride);
    const auto w = RandomFloats(rng, c.out * c.in);
    const auto bias = RandomFloats(rng, c.out);
    auto y = LinearOutput(rng, c, y_stride);
    for (float& v : y) v = v == kPadding ? v : gpu_test::RoundBf16(v);  // what a bf16 y can hold
    DeviceArray<uint16_t> d_x(gpu_test::ToBf16(x)), d_w(gpu_test::ToBf16(w));
    DeviceArray<float> d_bias(bias), d_y32(y);
    std::vector<uint16_t> y16 = gpu_test::ToBf16(y);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t n = c.out; n < y_stride; ++n) y16[r * y_stride + n] = kPaddingBits;
    }
    DeviceArray<uint16_t> d_y16(y16);
    LinearParams p = Params(c, ElementType::kBF16, d_x.get(), x_stride, d_w.get(), d_bias.get(), d_y32.get(), y_stride);
    ASSERT_TRUE(cuda::Linear(p, nullptr).ok());
    p.y = d_y16.get();
    p.y_type = ElementType::kBF16;
    const absl::Status status = cuda::Linear(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const std::vector<uint16_t> got16 = d_y16.Download();
    std::vector<float> got(c.rows * c.out);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t n = 0; n < y_stride; ++n) {
        if (n < c.out) {
          got[r * c.out + n] = gpu_test::FromBf16Bits(got16[r * y_stride + n]);
        } else {
          EXPECT_EQ(got16[r * y_stride + n], kPaddingBits) << "padding of row " << r << " overwritten";
        }
      }
    }
    EXPECT_TRUE(CloseInRelativeL2(got, LinearValues(d_y32.Download(), c, y_stride), kBf16OutTolerance));
  }
}

TEST_F(LinearGpuTest, RejectsBadParams) {
  DeviceArray<float> d_buf(std::vector<float>(64, 0.0f));
  for (ElementType type : {ElementType::kF32, ElementType::kBF16}) {
    SCOPED_TRACE(ElementTypeName(type));
    LinearParams p;
    p.rows = 2;
    p.in_features = 4;
    p.out_features = 4;
    p.type = type;
    p.x = d_buf.get();
    p.weight = d_buf.get();
    p.y = d_buf.get() + 32;
    LinearParams bad = p;
    bad.x_stride = 3;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Linear(bad, nullptr), "Linear: x_stride"));
    bad = p;
    bad.y_stride = 2;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Linear(bad, nullptr), "y_stride"));
    bad = p;
    bad.weight = nullptr;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Linear(bad, nullptr), "weight"));
    bad = p;
    bad.in_features = 0;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Linear(bad, nullptr), "in_features"));
    bad = p;
    bad.out_features = int64_t{1} << 32;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Linear(bad, nullptr), "out_features"));
    bad = p;
    bad.type = static_cast<ElementType>(7);
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Linear(bad, nullptr), "Linear: type"));
    bad = p;
    bad.y_type = static_cast<ElementType>(7);
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Linear(bad, nullptr), "y_type"));
    if (type == ElementType::kF32) {
      bad = p;
      bad.y_type = ElementType::kBF16;
      EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Linear(bad, nullptr), "y_type bf16 needs bf16 operands"));
    }
    bad = p;
    bad.rows = 0;  // nothing to do
    EXPECT_TRUE(cuda::Linear(bad, nullptr).ok());
  }
}

}  // namespace
}  // namespace tessera
