// Linear (BLAS) against a direct double loop: strides of a sub-block of wider
// activations, bias, accumulate into a residual, the decode row and no rows.
#include "kernels/linear.h"

#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;

constexpr double kLinearTolerance = 1e-5;
constexpr float kSentinel = 12345.0f;  // y padding between rows must keep it

struct LinearCase {
  int64_t rows, in_features, out_features, x_stride, y_stride;
  bool with_bias, accumulate;
};

void ExpectMatchesReference(const LinearCase& c, uint32_t seed) {
  SCOPED_TRACE(absl::StrCat("M=", c.rows, " K=", c.in_features, " N=", c.out_features,
                            " x_stride=", c.x_stride, " y_stride=", c.y_stride,
                            " bias=", c.with_bias, " accumulate=", c.accumulate));
  std::mt19937 rng(seed);
  const std::vector<float> x = RandomRows(rng, c.rows, c.in_features, c.x_stride);
  const std::vector<float> weight = RandomFloats(rng, c.out_features * c.in_features);
  const std::vector<float> bias = RandomFloats(rng, c.out_features);
  // y starts as a residual when accumulating, as NaN otherwise (must be overwritten).
  std::vector<float> y(c.rows * c.y_stride, kSentinel);
  const std::vector<float> start = RandomFloats(rng, c.rows * c.out_features);
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t n = 0; n < c.out_features; ++n) {
      y[r * c.y_stride + n] = c.accumulate ? start[r * c.out_features + n] : NAN;
    }
  }
  LinearParams p;
  p.rows = c.rows;
  p.in_features = c.in_features;
  p.out_features = c.out_features;
  p.x = x.data();
  p.x_stride = c.x_stride == c.in_features ? 0 : c.x_stride;
  p.weight = weight.data();
  p.bias = c.with_bias ? bias.data() : nullptr;
  p.y = y.data();
  p.y_stride = c.y_stride;
  p.accumulate = c.accumulate;
  ASSERT_TRUE(cpu::Linear(p).ok());

  std::vector<float> got;
  std::vector<double> want;
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t n = 0; n < c.out_features; ++n) {
      double acc = c.accumulate ? start[r * c.out_features + n] : 0.0;
      if (c.with_bias) acc += bias[n];
      for (int64_t k = 0; k < c.in_features; ++k) {
        acc += double{x[r * c.x_stride + k]} * weight[n * c.in_features + k];
      }
      want.push_back(acc);
      got.push_back(y[r * c.y_stride + n]);
    }
    for (int64_t n = c.out_features; n < c.y_stride; ++n) {
      EXPECT_EQ(y[r * c.y_stride + n], kSentinel) << "padding written, row " << r;
    }
  }
  EXPECT_TRUE(CloseInRelativeL2(got, want, kLinearTolerance));
}

TEST(LinearTest, MatchesDirectProduct) {
  ExpectMatchesReference({7, 13, 11, 13, 11, false, false}, 1);
  ExpectMatchesReference({1, 64, 3, 64, 3, false, false}, 2);    // decode row
  ExpectMatchesReference({33, 300, 129, 300, 129, false, false}, 3);
}

TEST(LinearTest, HonoursStrides) {
  ExpectMatchesReference({5, 9, 6, 20, 15, false, false}, 4);
  ExpectMatchesReference({3, 16, 8, 17, 8, true, false}, 5);
}

TEST(LinearTest, AddsBias) {
  ExpectMatchesReference({6, 10, 7, 10, 7, true, false}, 6);
}

TEST(LinearTest, AccumulatesIntoResidual) {
  ExpectMatchesReference({4, 12, 12, 12, 12, false, true}, 7);
  ExpectMatchesReference({4, 12, 5, 14, 9, true, true}, 8);
}

TEST(LinearTest, NoRowsIsANoOp) {
  LinearParams p;
  p.in_features = 4;
  p.out_features = 3;
  EXPECT_TRUE(cpu::Linear(p).ok());
}

TEST(LinearTest, RejectsInvalidParams) {
  std::vector<float> x(2 * 4), w(3 * 4), y(2 * 3);
  LinearParams valid;
  valid.rows = 2;
  valid.in_features = 4;
  valid.out_features = 3;
  valid.x = x.data();
  valid.weight = w.data();
  valid.y = y.data();
  ASSERT_TRUE(cpu::Linear(valid).ok());
  LinearParams p = valid;
  p.x_stride = 3;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Linear(p), "x_stride must be 0 or >= 4"));
  p = valid;
  p.weight = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Linear(p), "weight must not be null"));
  p = valid;
  p.out_features = -2;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Linear(p), "out_features"));
  p = valid;
  p.type = static_cast<ElementType>(7);
  EXPECT_TRUE(
      IsInvalidArgumentMentioning(cpu::Linear(p), "Linear: type must be kF32 or kBF16. Given: 7"));
  p = valid;
  p.y_type = static_cast<ElementType>(7);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Linear(p), "y_type must be kF32 or kBF16. Given: 7"));
  p = valid;
  p.y_type = ElementType::kBF16;  // a bf16 y needs bf16 operands, on every backend
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Linear(p), "y_type bf16 needs bf16 operands. Given: type f32"));
}

// bf16 operands are a valid request that the CPU reference does not compute
// (the CUDA backend does): UNIMPLEMENTED naming the type, y untouched.
TEST(LinearTest, RefusesBf16OperandsAsUnimplemented) {
  std::vector<uint16_t> x(2 * 4), w(3 * 4);
  std::vector<float> y(2 * 3, 5.0f);
  LinearParams p;
  p.rows = 2;
  p.in_features = 4;
  p.out_features = 3;
  p.type = ElementType::kBF16;
  p.x = x.data();
  p.weight = w.data();
  p.y = y.data();
  absl::Status status = cpu::Linear(p);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  p.y_type = ElementType::kBF16;  // and with a bf16 y alike
  status = cpu::Linear(p);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_NE(status.message().find("Linear: the CPU backend computes fp32 operands. Given: bf16"),
            absl::string_view::npos)
      << status;
  EXPECT_EQ(y, std::vector<float>(2 * 3, 5.0f));
}

}  // namespace
}  // namespace tessera
