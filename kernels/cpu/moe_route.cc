// Token by token: a stable ranking (score descending, index ascending) is the
// whole tie rule; the group step and the final choice use the same ranking.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/status_macros.h"
#include "kernels/moe_route.h"
#include "kernels/params_check_util.h"

namespace tessera::cpu {
namespace {

// The indices of the `k` largest of `scores`, largest first, lower index first among equals.
void TopK(const std::vector<float>& scores, int64_t k, std::vector<int64_t>& order) {
  order.resize(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  order.resize(k);
}

}  // namespace

absl::Status MoeRoute(const MoeRouteParams& p) {
  RETURN_IF_ERROR(CheckMoeRouteParams(p));
  const int64_t E = p.experts;
  const int64_t stride = params_check::StrideOr(p.logits_stride, E);
  std::vector<float> scores(E), choice(E), group_scores(p.n_group), members;
  std::vector<int64_t> order, groups, best;
  std::vector<bool> kept(p.n_group);
  for (int64_t t = 0; t < p.tokens; ++t) {
    const float* logits = p.logits + t * stride;  // (E)
    int32_t* ids = p.expert_ids + t * p.top_k;    // (k)
    float* weights = p.expert_weights + t * p.top_k;  // (k)
    switch (p.kind) {
      case MoeRouteKind::kSigmoidBiased: {
        for (int64_t e = 0; e < E; ++e) {
          scores[e] = 1.0f / (1.0f + std::exp(-logits[e]));
          choice[e] = scores[e] + (p.correction_bias != nullptr ? p.correction_bias[e] : 0.0f);
        }
        const int64_t per_group = E / p.n_group;
        for (int64_t g = 0; g < p.n_group; ++g) {  // the sum of each group's two best biased scores
          members.assign(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
          TopK(members, 2, best);
          group_scores[g] = members[best[0]] + members[best[1]];
        }
        TopK(group_scores, p.topk_group, groups);
        std::fill(kept.begin(), kept.end(), false);
        for (int64_t g : groups) kept[g] = true;
        for (int64_t e = 0; e < E; ++e) {
          if (!kept[e / per_group]) choice[e] = 0.0f;  // transformers masks with 0.0, not -inf
        }
        TopK(choice, p.top_k, order);
        float sum = 0.0f;
        for (int64_t j = 0; j < p.top_k; ++j) sum += scores[order[j]];
        for (int64_t j = 0; j < p.top_k; ++j) {
          ids[j] = static_cast<int32_t>(order[j]);
          float w = scores[order[j]];
          if (p.norm_topk_prob) w = w / (sum + 1e-20f);
          weights[j] = w * p.routed_scaling_factor;
        }
        break;
      }
      case MoeRouteKind::kSoftmaxTopK: {
        for (int64_t e = 0; e < E; ++e) scores[e] = logits[e];
        TopK(scores, p.top_k, order);
        const float max = scores[order[0]];
        float sum = 0.0f;
        for (int64_t j = 0; j < p.top_k; ++j) sum += std::exp(scores[order[j]] - max);
        for (int64_t j = 0; j < p.top_k; ++j) {
          ids[j] = static_cast<int32_t>(order[j]);
          weights[j] = std::exp(scores[order[j]] - max) / sum;
        }
        break;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
