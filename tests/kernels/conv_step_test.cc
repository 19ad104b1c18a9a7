// ConvStep, the batched one-token conv update, against the direct formula in
// double (out, and the state shifted by one row with x appended, exactly),
// against its own one-request calls (bit for bit: a batch must not change a
// request's result), against CausalConv1d with seq_len 1 (the prefill op's
// decode form), and with bf16 x / out (the fp32 result on the widened x,
// rounded once).
#include "kernels/conv_step.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/causal_conv1d.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;
using kernel_test::SameBits;

constexpr double kConvStepTolerance = 1e-6;

struct StepBatch {
  int64_t batch = 0, channels = 0, width = 0, x_stride = 0, out_stride = 0;
  std::vector<float> x;                    // (batch, x_stride) holding (batch, C)
  std::vector<float> weight, bias;         // (C, K), (C)
  std::vector<std::vector<float>> states;  // batch × (K-1, C)
};

StepBatch MakeBatch(int64_t batch, int64_t channels, int64_t width, uint32_t seed) {
  std::mt19937 rng(seed);
  StepBatch in;
  in.batch = batch;
  in.channels = channels;
  in.width = width;
  in.x_stride = channels + 7;   // xBC columns inside in_proj's row
  in.out_stride = channels + 1;
  in.x = kernel_test::RoundedBf16(RandomRows(rng, batch, channels, in.x_stride, -2.0f, 2.0f));
  in.weight = RandomFloats(rng, channels * width);
  in.bias = RandomFloats(rng, channels);
  for (int64_t r = 0; r < batch; ++r) in.states.push_back(RandomFloats(rng, (width - 1) * channels, -2.0f, 2.0f));
  return in;
}

ConvStepParams Params(const StepBatch& in, const void* x, float* const* states, void* out) {
  ConvStepParams p;
  p.batch = in.batch;
  p.channels = in.channels;
  p.kernel_width = in.width;
  p.x = x;
  p.x_stride = in.x_stride;
  p.weight = in.weight.data();
  p.bias = in.bias.data();
  p.states = states;
  p.out = out;
  p.out_stride = in.out_stride;
  return p;
}

std::vector<float*> Pointers(std::vector<std::vector<float>>& states) {
  std::vector<float*> ptrs;
  for (auto& s : states) ptrs.push_back(s.data());
  return ptrs;
}

TEST(ConvStepTest, MatchesTheFormulaAndShiftsEachState) {
  for (int64_t width : {1, 2, 4, 6}) {
    SCOPED_TRACE(width);
    const StepBatch in = MakeBatch(/*batch=*/4, 37, width, 10 + width);
    std::vector<std::vector<float>> states = in.states;
    std::vector<float*> ptrs = Pointers(states);
    std::vector<float> out = NaNs(in.batch * in.out_stride);
    ASSERT_TRUE(cpu::ConvStep(Params(in, in.x.data(), ptrs.data(), out.data())).ok());

    const int64_t C = in.channels, K = width;
    std::vector<double> want(in.batch * C);
    for (int64_t r = 0; r < in.batch; ++r) {
      const float* x = in.x.data() + r * in.x_stride;
      for (int64_t c = 0; c < C; ++c) {
        double acc = in.bias[c];
        for (int64_t k = 0; k < K - 1; ++k) acc += double{in.weight[c * K + k]} * in.states[r][k * C + c];
        acc += double{in.weight[c * K + K - 1]} * x[c];
        want[r * C + c] = acc / (1.0 + std::exp(-acc));
      }
      std::vector<float> want_state((K - 1) * C);  // rows 1.. of the old state, then x
      for (int64_t k = 0; k + 1 < K; ++k) {
        for (int64_t c = 0; c < C; ++c) {
          want_state[k * C + c] = k + 2 < K ? in.states[r][(k + 1) * C + c] : x[c];
        }
      }
      EXPECT_EQ(states[r], want_state) << "request " << r;
    }
    EXPECT_TRUE(CloseInRelativeL2(kernel_test::PackedRows(out, in.batch, C, in.out_stride), want,
                                  kConvStepTolerance));
  }
}

TEST(ConvStepTest, BatchGivesEachRequestItsOwnCallAndCausalConv1dsExactly) {
  const StepBatch in = MakeBatch(/*batch=*/6, 50, 4, 21);
  std::vector<std::vector<float>> batched = in.states, single = in.states, prefill_form = in.states;
  std::vector<float*> ptrs = Pointers(batched);
  std::vector<float> out = NaNs(in.batch * in.out_stride);
  ASSERT_TRUE(cpu::ConvStep(Params(in, in.x.data(), ptrs.data(), out.data())).ok());
  for (int64_t r = 0; r < in.batch; ++r) {
    std::vector<float> one_out = NaNs(in.channels), conv_out = NaNs(in.channels);
    StepBatch one_in = in;
    one_in.batch = 1;
    float* one_state = single[r].data();
    ASSERT_TRUE(cpu::ConvStep(Params(one_in, in.x.data() + r * in.x_stride, &one_state, one_out.data())).ok());
    CausalConv1dParams conv{1, in.channels, in.width, in.x.data() + r * in.x_stride, 0, in.weight.data(),
                            in.bias.data(), prefill_form[r].data(), conv_out.data(), prefill_form[r].data()};
    ASSERT_TRUE(cpu::CausalConv1d(conv).ok());
    const std::vector<float> row(out.begin() + r * in.out_stride, out.begin() + r * in.out_stride + in.channels);
    EXPECT_TRUE(SameBits(row, one_out)) << r;
    EXPECT_TRUE(SameBits(row, conv_out)) << r;
    EXPECT_EQ(batched[r], single[r]) << r;
    EXPECT_EQ(batched[r], prefill_form[r]) << r;
  }
}

TEST(ConvStepTest, Bf16InAndOutAreTheFp32ResultRounded) {
  const StepBatch in = MakeBatch(/*batch=*/3, 40, 4, 31);  // x already bf16 values
  const std::vector<uint16_t> x16 = kernel_test::ToBf16(in.x);
  std::vector<std::vector<float>> states32 = in.states, states16 = in.states;
  std::vector<float*> ptrs32 = Pointers(states32), ptrs16 = Pointers(states16);
  std::vector<float> out32 = NaNs(in.batch * in.out_stride);
  std::vector<uint16_t> out16(in.batch * in.out_stride, 0x7FC0);
  ASSERT_TRUE(cpu::ConvStep(Params(in, in.x.data(), ptrs32.data(), out32.data())).ok());
  ConvStepParams p = Params(in, x16.data(), ptrs16.data(), out16.data());
  p.x_type = ElementType::kBF16;
  p.out_type = ElementType::kBF16;
  ASSERT_TRUE(cpu::ConvStep(p).ok());
  EXPECT_EQ(kernel_test::FromBf16(kernel_test::PackedRows(out16, in.batch, in.channels, in.out_stride)),
            kernel_test::RoundedBf16(kernel_test::PackedRows(out32, in.batch, in.channels, in.out_stride)));
  for (int64_t r = 0; r < in.batch; ++r) EXPECT_EQ(states16[r], states32[r]) << r;
}

TEST(ConvStepTest, RejectsInvalidParams) {
  StepBatch in = MakeBatch(2, 8, 4, 41);
  std::vector<float*> ptrs = Pointers(in.states);
  std::vector<float> out(in.batch * in.out_stride);
  const ConvStepParams valid = Params(in, in.x.data(), ptrs.data(), out.data());
  ASSERT_TRUE(cpu::ConvStep(valid).ok());
  ConvStepParams p = valid;
  p.batch = -1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::ConvStep(p), "batch must be >= 0. Given: -1"));
  p = valid;
  p.kernel_width = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::ConvStep(p), "kernel_width"));
  p = valid;
  p.x_stride = 3;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::ConvStep(p), "x_stride must be 0 or >= 8. Given: 3"));
  p = valid;
  p.out_stride = 5;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::ConvStep(p), "out_stride"));
  p = valid;
  p.states = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::ConvStep(p), "states"));
  p = valid;
  p.out_type = static_cast<ElementType>(9);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::ConvStep(p), "out_type"));
  p = valid;
  ptrs[1] = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::ConvStep(p), "states[1]"));
  p = valid;
  p.kernel_width = 1;  // no state to carry: states may be null
  p.states = nullptr;
  EXPECT_TRUE(cpu::ConvStep(p).ok());
}

}  // namespace
}  // namespace tessera
