// MoeRoute against a direct implementation of the two routing rules in double
// (DESIGN.md, "Mixture of experts"), on awkward sizes and strided logits, and
// on ties: equal scores must choose the lower index, as torch.topk does.
#include "kernels/moe_route.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomRows;

constexpr double kWeightTolerance = 1e-6;  // per weight, relative to 1 (weights are O(1))

struct Route {
  std::vector<int32_t> ids;     // (T, k)
  std::vector<float> weights;   // (T, k)
};

// The k best of `score` (descending, lower index first among equals) by selection, not sorting.
std::vector<int64_t> Best(const std::vector<double>& score, int64_t k) {
  std::vector<int64_t> chosen;
  std::vector<bool> used(score.size(), false);
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    for (int64_t e = 0; e < static_cast<int64_t>(score.size()); ++e) {
      if (!used[e] && (best < 0 || score[e] > score[best])) best = e;
    }
    used[best] = true;
    chosen.push_back(best);
  }
  return chosen;
}

Route Reference(const MoeRouteParams& p) {
  const int64_t E = p.experts, stride = p.logits_stride == 0 ? E : p.logits_stride;
  Route r;
  for (int64_t t = 0; t < p.tokens; ++t) {
    const float* logits = p.logits + t * stride;
    std::vector<double> weight_of(E), choice(E);
    if (p.kind == MoeRouteKind::kSoftmaxTopK) {
      for (int64_t e = 0; e < E; ++e) choice[e] = logits[e];
      const std::vector<int64_t> top = Best(choice, p.top_k);
      double sum = 0;
      for (int64_t e : top) sum += std::exp(choice[e] - choice[top[0]]);
      for (int64_t e : top) {
        r.ids.push_back(static_cast<int32_t>(e));
        r.weights.push_back(static_cast<float>(std::exp(choice[e] - choice[top[0]]) / sum));
      }
      continue;
    }
    for (int64_t e = 0; e < E; ++e) {
      weight_of[e] = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[e])));
      choice[e] = weight_of[e] + (p.correction_bias ? p.correction_bias[e] : 0.0);
    }
    const int64_t per_group = E / p.n_group;
    std::vector<double> group_score(p.n_group);
    for (int64_t g = 0; g < p.n_group; ++g) {
      std::vector<double> members(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
      const std::vector<int64_t> two = Best(members, 2);
      group_score[g] = members[two[0]] + members[two[1]];
    }
    const std::vector<int64_t> kept = Best(group_score, p.topk_group);
    for (int64_t e = 0; e < E; ++e) {
      if (std::find(kept.begin(), kept.end(), e / per_group) == kept.end()) choice[e] = 0.0;
    }
    const std::vector<int64_t> top = Best(choice, p.top_k);
    double sum = 0;
    for (int64_t e : top) sum += weight_of[e];
    for (int64_t e : top) {
      r.ids.push_back(static_cast<int32_t>(e));
      const double w = p.norm_topk_prob ? weight_of[e] / (sum + 1e-20) : weight_of[e];
      r.weights.push_back(static_cast<float>(w * p.routed_scaling_factor));
    }
  }
  return r;
}

// Runs the CPU op into NaN-poisoned outputs and compares with Reference.
void ExpectMatchesReference(MoeRouteParams p) {
  std::vector<int32_t> ids(p.tokens * p.top_k, -7);
  std::vector<float> weights = NaNs(p.tokens * p.top_k);
  p.expert_ids = ids.data();
  p.expert_weights = weights.data();
  ASSERT_TRUE(cpu::MoeRoute(p).ok()) << cpu::MoeRoute(p);
  const Route want = Reference(p);
  ASSERT_EQ(ids, want.ids);
  for (size_t i = 0; i < weights.size(); ++i) {
    EXPECT_NEAR(weights[i], want.weights[i], kWeightTolerance * std::max(1.0f, p.routed_scaling_factor)) << i;
  }
}

TEST(MoeRouteTest, SoftmaxTopKOnStridedLogits) {
  std::mt19937 rng(11);
  constexpr int64_t kTokens = 13, kExperts = 6, kStride = 9;
  const std::vector<float> logits = RandomRows(rng, kTokens, kExperts, kStride, -4.0f, 4.0f);
  MoeRouteParams p;
  p.tokens = kTokens;
  p.experts = kExperts;
  p.top_k = 2;
  p.kind = MoeRouteKind::kSoftmaxTopK;
  p.logits = logits.data();
  p.logits_stride = kStride;
  ExpectMatchesReference(p);
  p.top_k = kExperts;  // every expert: a full softmax
  ExpectMatchesReference(p);
}

TEST(MoeRouteTest, SigmoidBiasedGroupLimitedAndScaled) {
  std::mt19937 rng(12);
  constexpr int64_t kTokens = 17, kExperts = 12;
  const std::vector<float> logits = RandomRows(rng, kTokens, kExperts, kExperts, -3.0f, 3.0f);
  const std::vector<float> bias = RandomRows(rng, 1, kExperts, kExperts, -0.5f, 0.5f);
  MoeRouteParams p;
  p.tokens = kTokens;
  p.experts = kExperts;
  p.top_k = 3;
  p.kind = MoeRouteKind::kSigmoidBiased;
  p.n_group = 4;
  p.topk_group = 2;
  p.norm_topk_prob = true;
  p.routed_scaling_factor = 2.5f;
  p.logits = logits.data();
  p.correction_bias = bias.data();
  ExpectMatchesReference(p);
  p.norm_topk_prob = false;
  p.n_group = 1;  // Nemotron-3-Nano: one group
  p.topk_group = 1;
  ExpectMatchesReference(p);
  p.correction_bias = nullptr;
  ExpectMatchesReference(p);
}

// The bias changes the choice but never the weights: a large bias on expert 5
// makes it chosen with its own (small) sigmoid score as weight.
TEST(MoeRouteTest, CorrectionBiasChoosesButDoesNotWeigh) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f, -2.0f, -3.0f};
  std::vector<float> bias(6, 0.0f);
  bias[5] = 10.0f;
  std::vector<int32_t> ids(2);
  std::vector<float> weights = NaNs(2);
  MoeRouteParams p;
  p.tokens = 1;
  p.experts = 6;
  p.top_k = 2;
  p.kind = MoeRouteKind::kSigmoidBiased;
  p.norm_topk_prob = false;
  p.logits = logits.data();
  p.correction_bias = bias.data();
  p.expert_ids = ids.data();
  p.expert_weights = weights.data();
  ASSERT_TRUE(cpu::MoeRoute(p).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{5, 0}));
  EXPECT_NEAR(weights[0], 1.0 / (1.0 + std::exp(3.0)), 1e-7);
  EXPECT_NEAR(weights[1], 1.0 / (1.0 + std::exp(-2.0)), 1e-7);
}

TEST(MoeRouteTest, TiesChooseTheLowerIndex) {
  std::vector<int32_t> ids(3);
  std::vector<float> weights = NaNs(3);
  const std::vector<float> equal(8, 0.25f);
  MoeRouteParams p;
  p.tokens = 1;
  p.experts = 8;
  p.top_k = 3;
  p.logits = equal.data();
  p.expert_ids = ids.data();
  p.expert_weights = weights.data();
  p.kind = MoeRouteKind::kSoftmaxTopK;
  ASSERT_TRUE(cpu::MoeRoute(p).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 2}));
  for (float w : weights) EXPECT_NEAR(w, 1.0f / 3.0f, 1e-7);

  p.kind = MoeRouteKind::kSigmoidBiased;  // equal groups too: the lower groups are kept
  p.n_group = 4;
  p.topk_group = 2;
  ASSERT_TRUE(cpu::MoeRoute(p).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 2}));

  const std::vector<float> tie_at_end = {0.0f, 1.0f, 0.5f, 1.0f, 1.0f, -1.0f, 0.5f, 0.0f};
  p.logits = tie_at_end.data();
  p.kind = MoeRouteKind::kSoftmaxTopK;
  p.top_k = 4;
  ids.assign(4, -1);
  weights = NaNs(4);
  p.expert_ids = ids.data();
  p.expert_weights = weights.data();
  ASSERT_TRUE(cpu::MoeRoute(p).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 3, 4, 2}));  // 0.5 at 2 before 0.5 at 6
}

TEST(MoeRouteTest, NoTokensIsANoOp) {
  MoeRouteParams p;
  p.experts = 4;
  p.top_k = 2;
  EXPECT_TRUE(cpu::MoeRoute(p).ok());
}

TEST(MoeRouteTest, BadParamsAreRefusedByName) {
  const std::vector<float> logits(8, 0.0f);
  std::vector<int32_t> ids(8);
  std::vector<float> weights(8);
  MoeRouteParams p;
  p.tokens = 1;
  p.experts = 8;
  p.top_k = 9;
  p.logits = logits.data();
  p.expert_ids = ids.data();
  p.expert_weights = weights.data();
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::MoeRoute(p), "top_k"));
  p.top_k = 2;
  p.kind = MoeRouteKind::kSigmoidBiased;
  p.n_group = 3;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::MoeRoute(p), "n_group"));
  p.n_group = 4;
  p.topk_group = 5;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::MoeRoute(p), "topk_group"));
  p.topk_group = 1;
  p.top_k = 3;  // one group of 2 experts cannot give 3
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::MoeRoute(p), "top_k"));
  p.top_k = 2;
  p.routed_scaling_factor = std::nanf("");
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::MoeRoute(p), "routed_scaling_factor"));
  p.routed_scaling_factor = 1.0f;
  p.logits = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::MoeRoute(p), "logits"));
}

}  // namespace
}  // namespace tessera
