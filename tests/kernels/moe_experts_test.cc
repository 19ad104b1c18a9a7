// MoeExperts against a direct per-token loop in double (each token's chosen
// experts, weighted, added to y) for relu² and fused SwiGLU experts, with
// strided x and y, y accumulated into, and ids checked before y is touched.
#include "kernels/moe_experts.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::PackedRows;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;

constexpr double kExpertsTolerance = 1e-5;  // fp32 GEMMs of width <= 23 against double

struct Case {
  int64_t tokens, hidden, experts, top_k, intermediate;
  MoeExpertActivation activation;
};

// y (T, y_stride) += Σ_j w · down_e · act(up_e · x), in double.
std::vector<double> Reference(const Case& c, const std::vector<float>& x, int64_t x_stride,
                              const std::vector<int32_t>& ids, const std::vector<float>& w,
                              const std::vector<float>& up, const std::vector<float>& down,
                              const std::vector<float>& y0, int64_t y_stride) {
  const bool swiglu = c.activation == MoeExpertActivation::kSwiGluFused;
  const int64_t up_rows = swiglu ? 2 * c.intermediate : c.intermediate;
  std::vector<double> y(y0.begin(), y0.end());
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t j = 0; j < c.top_k; ++j) {
      const int64_t e = ids[t * c.top_k + j];
      std::vector<double> h(up_rows, 0.0), act(c.intermediate);
      for (int64_t r = 0; r < up_rows; ++r) {
        for (int64_t i = 0; i < c.hidden; ++i) h[r] += double{up[(e * up_rows + r) * c.hidden + i]} * x[t * x_stride + i];
      }
      for (int64_t i = 0; i < c.intermediate; ++i) {
        act[i] = swiglu ? h[i] / (1.0 + std::exp(-h[i])) * h[c.intermediate + i] : (h[i] > 0 ? h[i] * h[i] : 0.0);
      }
      for (int64_t o = 0; o < c.hidden; ++o) {
        double sum = 0;
        for (int64_t i = 0; i < c.intermediate; ++i) sum += double{down[(e * c.hidden + o) * c.intermediate + i]} * act[i];
        y[t * y_stride + o] += w[t * c.top_k + j] * sum;
      }
    }
  }
  return y;
}

void ExpectMatches(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t x_stride = c.hidden + 3, y_stride = c.hidden + 2;
  const int64_t up_rows = c.activation == MoeExpertActivation::kSwiGluFused ? 2 * c.intermediate : c.intermediate;
  const std::vector<float> x = RandomRows(rng, c.tokens, c.hidden, x_stride, -1.0f, 1.0f);
  const std::vector<float> up = RandomFloats(rng, c.experts * up_rows * c.hidden, -0.5f, 0.5f);
  const std::vector<float> down = RandomFloats(rng, c.experts * c.hidden * c.intermediate, -0.5f, 0.5f);
  const std::vector<float> w = RandomFloats(rng, c.tokens * c.top_k, 0.1f, 2.5f);
  std::vector<int32_t> ids(c.tokens * c.top_k);
  for (int64_t t = 0; t < c.tokens; ++t) {  // k distinct experts per token, in a random order
    std::vector<int32_t> all(c.experts);
    for (int32_t e = 0; e < c.experts; ++e) all[e] = e;
    std::shuffle(all.begin(), all.end(), rng);
    for (int64_t j = 0; j < c.top_k; ++j) ids[t * c.top_k + j] = all[j];
  }
  std::vector<float> y = RandomRows(rng, c.tokens, c.hidden, y_stride, -1.0f, 1.0f);  // accumulated into
  const std::vector<double> want = Reference(c, x, x_stride, ids, w, up, down, y, y_stride);
  MoeExpertsParams p;
  p.tokens = c.tokens;
  p.hidden = c.hidden;
  p.experts = c.experts;
  p.top_k = c.top_k;
  p.intermediate = c.intermediate;
  p.activation = c.activation;
  p.x = x.data();
  p.x_stride = x_stride;
  p.expert_ids = ids.data();
  p.expert_weights = w.data();
  p.up = up.data();
  p.down = down.data();
  p.y = y.data();
  p.y_stride = y_stride;
  ASSERT_TRUE(cpu::MoeExperts(p).ok()) << cpu::MoeExperts(p);
  EXPECT_TRUE(CloseInRelativeL2(PackedRows(y, c.tokens, c.hidden, y_stride),
                                PackedRows(want, c.tokens, c.hidden, y_stride), kExpertsTolerance));
}

TEST(MoeExpertsTest, Relu2ExpertsMatchTheLoop) {
  ExpectMatches({7, 13, 5, 2, 11, MoeExpertActivation::kRelu2}, 21);
  ExpectMatches({1, 8, 3, 3, 4, MoeExpertActivation::kRelu2}, 22);  // every expert, one token
}

TEST(MoeExpertsTest, FusedSwiGluExpertsMatchTheLoop) {
  ExpectMatches({9, 16, 6, 2, 7, MoeExpertActivation::kSwiGluFused}, 23);
  ExpectMatches({4, 5, 8, 6, 23, MoeExpertActivation::kSwiGluFused}, 24);
}

TEST(MoeExpertsTest, AnIdOutOfRangeLeavesYAsItWas) {
  const std::vector<float> x(2 * 4, 1.0f), up(3 * 2 * 4, 0.5f), down(3 * 4 * 2, 0.5f), w(2, 1.0f);
  const std::vector<int32_t> ids = {0, 3};  // token 1 names expert 3 of 3
  std::vector<float> y(2 * 4, 7.0f);
  MoeExpertsParams p;
  p.tokens = 2;
  p.hidden = 4;
  p.experts = 3;
  p.top_k = 1;
  p.intermediate = 2;
  p.x = x.data();
  p.expert_ids = ids.data();
  p.expert_weights = w.data();
  p.up = up.data();
  p.down = down.data();
  p.y = y.data();
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::MoeExperts(p), "expert_ids[1, 0]"));
  for (float v : y) EXPECT_EQ(v, 7.0f);
  p.type = ElementType::kBF16;
  EXPECT_EQ(cpu::MoeExperts(p).code(), absl::StatusCode::kUnimplemented);
  p.type = ElementType::kF32;
  p.top_k = 4;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::MoeExperts(p), "top_k"));
  p.top_k = 1;
  p.tokens = 0;
  EXPECT_TRUE(cpu::MoeExperts(p).ok());
}

}  // namespace
}  // namespace tessera
