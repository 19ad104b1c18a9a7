// Linear through cuBLAS against the OpenBLAS reference (fp32, strides, bias,
// accumulate), and the bf16 check: MixedLinear on bf16 inputs (cuBLAS GemmEx)
// must be within 2× the error of a plain implementation that rounds inputs and
// outputs to bf16, both measured against a float64 product of the unrounded
// inputs. mixed_precision_gpu_test.cc covers MixedLinear's strides and bias.
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/mixed_precision.h"
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

constexpr double kTolerance = 1e-5;
constexpr float kPadding = 7.0f;  // y padding columns must keep this value

class LinearGpuTest : public GpuTest {};

struct LinearCase {
  int64_t rows, in, out, x_pad, y_pad;
  bool bias, accumulate;
};

TEST_F(LinearGpuTest, MatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const LinearCase& c : {LinearCase{1, 1, 1, 0, 0, false, false},
                              LinearCase{1, 64, 33, 0, 0, true, false},
                              LinearCase{7, 33, 17, 3, 5, true, true},
                              LinearCase{130, 257, 65, 0, 0, false, true},
                              LinearCase{64, 1024, 1000, 8, 24, true, false},
                              LinearCase{300, 512, 2048 + 256, 0, 0, true, true}}) {
    SCOPED_TRACE(testing::Message() << c.rows << "x" << c.in << " -> " << c.out << " bias "
                                    << c.bias << " accumulate " << c.accumulate);
    const int64_t x_stride = c.in + c.x_pad, y_stride = c.out + c.y_pad;
    const auto x = RandomRows(rng, c.rows, c.in, x_stride);
    const auto w = RandomFloats(rng, c.out * c.in);
    const auto bias = RandomFloats(rng, c.out);
    std::vector<float> y(c.rows * y_stride, kPadding);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t n = 0; n < c.out; ++n) {
        y[r * y_stride + n] = c.accumulate ? RandomFloats(rng, 1)[0] : NaNs(1)[0];
      }
    }
    std::vector<float> want = y;
    LinearParams p{c.rows, c.in, c.out, x.data(), x_stride, w.data(),
                   c.bias ? bias.data() : nullptr, want.data(), y_stride, c.accumulate};
    ASSERT_TRUE(cpu::Linear(p).ok());
    DeviceArray<float> d_x(x), d_w(w), d_bias(bias), d_y(y);
    p.x = d_x.get();
    p.weight = d_w.get();
    p.bias = c.bias ? d_bias.get() : nullptr;
    p.y = d_y.get();
    const absl::Status status = cuda::Linear(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(CloseInRelativeL2(d_y.Download(), want, kTolerance));
  }
  LinearParams bad{1, 4, 4, nullptr, 2};
  EXPECT_TRUE(kernel_test::IsInvalidArgumentMentioning(cuda::Linear(bad, nullptr), "x_stride"));
}

TEST_F(LinearGpuTest, Bf16WithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  const int64_t m = 256, k = 1024, n = 512;
  const auto x = RandomFloats(rng, m * k);
  const auto w = RandomFloats(rng, n * k);
  // float64 reference on the unrounded inputs, and the plain bf16 implementation.
  const auto xr = gpu_test::RoundedBf16(x), wr = gpu_test::RoundedBf16(w);
  std::vector<double> ref(m * n);
  std::vector<float> plain(m * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double exact = 0.0, rounded = 0.0;
      for (int64_t l = 0; l < k; ++l) {
        exact += double{x[i * k + l]} * w[j * k + l];
        rounded += double{xr[i * k + l]} * wr[j * k + l];
      }
      ref[i * n + j] = exact;
      plain[i * n + j] = gpu_test::RoundBf16(static_cast<float>(rounded));
    }
  }
  DeviceArray<uint16_t> d_x(gpu_test::ToBf16(x)), d_w(gpu_test::ToBf16(w));
  DeviceArray<float> d_y(NaNs(m * n));
  cuda::MixedLinearParams p;
  p.rows = m;
  p.in_features = k;
  p.out_features = n;
  p.type = cuda::ElementType::kBF16;
  p.x = d_x.get();
  p.weight = d_w.get();
  p.y = d_y.get();
  const absl::Status status = cuda::MixedLinear(p, nullptr);
  ASSERT_TRUE(status.ok()) << status;
  const std::vector<float> got = d_y.Download();
  for (float v : got) ASSERT_TRUE(std::isfinite(v));
  const double err = gpu_test::RelativeL2(got, ref);
  const double plain_err = gpu_test::RelativeL2(plain, ref);
  RecordProperty("bf16_error", std::to_string(err));
  RecordProperty("plain_bf16_error", std::to_string(plain_err));
  std::printf("Linear bf16: relative L2 %.3g, plain bf16 %.3g\n", err, plain_err);
  EXPECT_GT(plain_err, 0.0);
  EXPECT_LE(err, 2.0 * plain_err);
}

}  // namespace
}  // namespace tessera
