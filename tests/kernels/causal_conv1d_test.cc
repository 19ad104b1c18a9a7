// CausalConv1d against the direct formula in double, and against itself when a
// sequence is cut anywhere (shards, the conv halo, prefill then decode): the
// carried state must make the pieces equal the whole. bf16 x and out: the
// fp32 result on the widened x, out rounded once, bit for bit, and the state
// holding the widened rows exactly.
#include "kernels/causal_conv1d.h"

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
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;

constexpr double kConvTolerance = 1e-5;

struct ConvInputs {
  int64_t len, channels, width, x_stride;
  std::vector<float> x;         // (L, x_stride) holding (L, C)
  std::vector<float> weight;    // (C, K)
  std::vector<float> bias;      // (C)
  std::vector<float> state_in;  // (K-1, C)
  int64_t state_elems() const { return (width - 1) * channels; }
};

ConvInputs MakeInputs(int64_t len, int64_t channels, int64_t width, int64_t x_stride,
                      uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> x = RandomRows(rng, len, channels, x_stride, -2.0f, 2.0f);
  std::vector<float> weight = RandomFloats(rng, channels * width);
  std::vector<float> bias = RandomFloats(rng, channels);
  std::vector<float> state_in = RandomFloats(rng, (width - 1) * channels, -2.0f, 2.0f);
  return ConvInputs{len, channels, width, x_stride, x, weight, bias, state_in};
}

struct ConvOutputs {
  std::vector<float> out;        // (L, C)
  std::vector<float> state_out;  // (K-1, C)
};

// Runs tokens [begin, begin + len) of `in` from `state_in` (null for zeros).
ConvOutputs RunConv(const ConvInputs& in, int64_t begin, int64_t len, const float* state_in,
                    bool with_bias) {
  ConvOutputs result{NaNs(len * in.channels), NaNs(in.state_elems())};
  CausalConv1dParams p;
  p.seq_len = len;
  p.channels = in.channels;
  p.kernel_width = in.width;
  p.x = in.x.data() + begin * in.x_stride;
  p.x_stride = in.x_stride == in.channels ? 0 : in.x_stride;
  p.weight = in.weight.data();
  p.bias = with_bias ? in.bias.data() : nullptr;
  p.state_in = state_in;
  p.out = result.out.data();
  p.state_out = result.state_out.data();
  const absl::Status status = cpu::CausalConv1d(p);
  EXPECT_TRUE(status.ok()) << status;
  return result;
}

struct ReferenceOutputs {
  std::vector<double> out, state_out;
};

ReferenceOutputs DirectReference(const ConvInputs& in, bool with_state, bool with_bias) {
  const int64_t C = in.channels, K = in.width;
  // xpad = [state_in ; x], (K-1+L, C)
  std::vector<double> xpad((K - 1 + in.len) * C, 0.0);
  if (with_state) std::copy(in.state_in.begin(), in.state_in.end(), xpad.begin());
  for (int64_t t = 0; t < in.len; ++t) {
    for (int64_t c = 0; c < C; ++c) xpad[(K - 1 + t) * C + c] = in.x[t * in.x_stride + c];
  }
  ReferenceOutputs ref;
  ref.out.resize(in.len * C);
  for (int64_t t = 0; t < in.len; ++t) {
    for (int64_t c = 0; c < C; ++c) {
      double acc = with_bias ? in.bias[c] : 0.0;
      for (int64_t k = 0; k < K; ++k) acc += double{in.weight[c * K + k]} * xpad[(t + k) * C + c];
      ref.out[t * C + c] = acc / (1.0 + std::exp(-acc));
    }
  }
  ref.state_out.assign(xpad.end() - (K - 1) * C, xpad.end());
  return ref;
}

TEST(CausalConv1dTest, MatchesDirectFormula) {
  struct Case {
    int64_t len, channels, width, x_stride;
  };
  uint32_t seed = 1;
  for (const Case& c : {Case{1, 5, 4, 5}, Case{2, 9, 4, 12}, Case{7, 13, 4, 13},
                        Case{33, 37, 4, 40}, Case{20, 3, 1, 3}, Case{6, 8, 2, 11}}) {
    for (bool with_state : {false, true}) {
      for (bool with_bias : {false, true}) {
        SCOPED_TRACE(absl::StrCat("L=", c.len, " C=", c.channels, " K=", c.width, " state=",
                                  with_state, " bias=", with_bias));
        const ConvInputs in = MakeInputs(c.len, c.channels, c.width, c.x_stride, seed++);
        const ConvOutputs got =
            RunConv(in, 0, in.len, with_state ? in.state_in.data() : nullptr, with_bias);
        const ReferenceOutputs want = DirectReference(in, with_state, with_bias);
        EXPECT_TRUE(CloseInRelativeL2(got.out, want.out, kConvTolerance)) << "out";
        if (c.width > 1) {
          EXPECT_TRUE(CloseInRelativeL2(got.state_out, want.state_out, kConvTolerance));
        }
      }
    }
  }
}

// Prefix then rest, the state carried in place (state_out aliasing state_in).
TEST(CausalConv1dTest, SplitSequenceWithCarriedStateMatchesWhole) {
  const ConvInputs in = MakeInputs(/*len=*/11, /*channels=*/6, /*width=*/4, 9, 42);
  const ConvOutputs whole = RunConv(in, 0, in.len, in.state_in.data(), true);
  for (int64_t split : {0, 1, 2, 3, 4, 10, 11}) {
    SCOPED_TRACE(absl::StrCat("split=", split));
    std::vector<float> state = in.state_in;
    std::vector<float> out = NaNs(in.len * in.channels);
    for (auto [begin, len] : {std::pair<int64_t, int64_t>{0, split}, {split, in.len - split}}) {
      CausalConv1dParams p;
      p.seq_len = len;
      p.channels = in.channels;
      p.kernel_width = in.width;
      p.x = in.x.data() + begin * in.x_stride;
      p.x_stride = in.x_stride;
      p.weight = in.weight.data();
      p.bias = in.bias.data();
      p.state_in = state.data();
      p.state_out = state.data();
      p.out = out.data() + begin * in.channels;
      ASSERT_TRUE(cpu::CausalConv1d(p).ok());
    }
    EXPECT_TRUE(CloseInRelativeL2(out, whole.out, kConvTolerance)) << "out";
    EXPECT_TRUE(CloseInRelativeL2(state, whole.state_out, kConvTolerance)) << "state";
  }
}

TEST(CausalConv1dTest, DecodeUpdateEqualsPrefillRow) {
  const ConvInputs in = MakeInputs(/*len=*/9, /*channels=*/7, /*width=*/4, 7, 43);
  const ConvOutputs prefill = RunConv(in, 0, in.len - 1, nullptr, true);
  const ConvOutputs decode = RunConv(in, in.len - 1, 1, prefill.state_out.data(), true);
  const ConvOutputs whole = RunConv(in, 0, in.len, nullptr, true);
  const std::vector<float> last_row(whole.out.end() - in.channels, whole.out.end());
  EXPECT_TRUE(CloseInRelativeL2(decode.out, last_row, kConvTolerance));
  EXPECT_TRUE(CloseInRelativeL2(decode.state_out, whole.state_out, kConvTolerance));
}

TEST(CausalConv1dTest, EmptySequenceOnlyMovesState) {
  const ConvInputs in = MakeInputs(/*len=*/0, /*channels=*/5, /*width=*/3, 5, 44);
  CausalConv1dParams p;
  p.channels = in.channels;
  p.kernel_width = in.width;
  p.state_in = in.state_in.data();
  std::vector<float> state_out = NaNs(in.state_elems());
  p.state_out = state_out.data();
  ASSERT_TRUE(cpu::CausalConv1d(p).ok());
  EXPECT_EQ(state_out, in.state_in);
  p.state_in = nullptr;  // no state in: zeros out
  ASSERT_TRUE(cpu::CausalConv1d(p).ok());
  EXPECT_EQ(state_out, std::vector<float>(in.state_elems(), 0.0f));
}

TEST(CausalConv1dTest, Bf16InAndOutAreTheFp32ResultRoundedOnce) {
  ConvInputs in = MakeInputs(/*len=*/13, /*channels=*/24, /*width=*/4, /*x_stride=*/40, 46);
  in.x = kernel_test::RoundedBf16(in.x);  // what a bf16 x holds
  const ConvOutputs want = RunConv(in, 0, in.len, in.state_in.data(), true);
  const std::vector<uint16_t> x16 = kernel_test::ToBf16(in.x);
  for (ElementType x_type : {ElementType::kF32, ElementType::kBF16}) {
    for (ElementType out_type : {ElementType::kF32, ElementType::kBF16}) {
      SCOPED_TRACE(absl::StrCat("x ", ElementTypeName(x_type), ", out ", ElementTypeName(out_type)));
      std::vector<float> out32 = NaNs(in.len * in.channels);
      std::vector<uint16_t> out16(in.len * in.channels, 0x7FC0);
      std::vector<float> state_out = NaNs(in.state_elems());
      CausalConv1dParams p;
      p.seq_len = in.len;
      p.channels = in.channels;
      p.kernel_width = in.width;
      p.x = x_type == ElementType::kF32 ? static_cast<const void*>(in.x.data()) : x16.data();
      p.x_stride = in.x_stride;
      p.weight = in.weight.data();
      p.bias = in.bias.data();
      p.state_in = in.state_in.data();
      p.out = out_type == ElementType::kF32 ? static_cast<void*>(out32.data()) : out16.data();
      p.state_out = state_out.data();
      p.x_type = x_type;
      p.out_type = out_type;
      ASSERT_TRUE(cpu::CausalConv1d(p).ok());
      const std::vector<float> got = out_type == ElementType::kF32 ? out32 : kernel_test::FromBf16(out16);
      EXPECT_EQ(got, out_type == ElementType::kF32 ? want.out : kernel_test::RoundedBf16(want.out));
      EXPECT_EQ(state_out, want.state_out);
    }
  }
}

TEST(CausalConv1dTest, RejectsInvalidParams) {
  const ConvInputs in = MakeInputs(3, 4, 4, 4, 45);
  std::vector<float> out(3 * 4);
  CausalConv1dParams valid;
  valid.seq_len = 3;
  valid.channels = 4;
  valid.kernel_width = 4;
  valid.x = in.x.data();
  valid.weight = in.weight.data();
  valid.out = out.data();
  ASSERT_TRUE(cpu::CausalConv1d(valid).ok());
  CausalConv1dParams p = valid;
  p.kernel_width = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::CausalConv1d(p), "kernel_width must be > 0"));
  p = valid;
  p.weight = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::CausalConv1d(p), "weight"));
  p = valid;
  p.x_stride = 3;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::CausalConv1d(p), "x_stride"));
  p = valid;
  p.x_type = static_cast<ElementType>(3);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::CausalConv1d(p), "x_type"));
  p = valid;
  p.out_type = static_cast<ElementType>(3);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::CausalConv1d(p), "out_type"));
}

}  // namespace
}  // namespace tessera
