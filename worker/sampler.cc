// Sampling in three steps over the tokens of nonzero weight: weigh, cut
// (top-k, then top-p over the renormalized remainder, as Hugging Face chains
// its warpers), draw. Cuts order tokens by raw logit (ties: lower id first), not
// by weight, so that the order is exact even when exp() rounds two weights to
// the same double; top_k = 1 and a tiny top_p are therefore exactly greedy.
#include "worker/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tessera {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kPosInf = std::numeric_limits<float>::infinity();

float SanitizedLogit(float logit) { return std::isnan(logit) ? kNegInf : logit; }

// Uniform in [0, 1) from the top 53 bits: the same on every platform, unlike
// std::uniform_real_distribution.
double UniformUnit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

int32_t GreedyToken(absl::Span<const float> logits) {
  int32_t best = 0;
  float best_logit = kNegInf;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float logit = SanitizedLogit(logits[i]);
    if (logit > best_logit) {
      best_logit = logit;
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

Sampler::Sampler(const SamplingConfig& config) : config_(config), rng_(config.seed) {}

int32_t Sampler::Sample(absl::Span<const float> logits) {
  if (!(config_.temperature > 0)) return GreedyToken(logits);
  float max_logit = kNegInf;
  for (float logit : logits) max_logit = std::max(max_logit, SanitizedLogit(logit));
  if (max_logit == kNegInf) return 0;  // also the empty row

  // Weigh. Subtracting the max before dividing by T keeps tiny temperatures
  // finite; +inf logits take all the mass.
  candidates_.clear();
  const double inv_temperature = 1.0 / static_cast<double>(config_.temperature);
  for (size_t i = 0; i < logits.size(); ++i) {
    const float logit = SanitizedLogit(logits[i]);
    double weight = 0;
    if (max_logit == kPosInf) {
      weight = logit == kPosInf ? 1.0 : 0.0;
    } else {
      weight = std::exp((static_cast<double>(logit) - max_logit) * inv_temperature);
    }
    if (weight > 0) candidates_.push_back({static_cast<int32_t>(i), logit, weight});  // NaN weight fails too
  }
  if (candidates_.empty()) return GreedyToken(logits);  // unreachable: the max has weight 1

  // Cut.
  const auto before = [](const Candidate& a, const Candidate& b) {
    return a.logit != b.logit ? a.logit > b.logit : a.token < b.token;
  };
  const bool cut_top_p = config_.top_p > 0 && config_.top_p < 1;
  const size_t top_k = static_cast<size_t>(std::max<int32_t>(config_.top_k, 0));
  if (top_k > 0 && top_k < candidates_.size()) {
    std::partial_sort(candidates_.begin(), candidates_.begin() + top_k, candidates_.end(), before);
    candidates_.resize(top_k);
  } else if (cut_top_p) {
    std::sort(candidates_.begin(), candidates_.end(), before);
  }
  double total_weight = 0;
  for (const Candidate& c : candidates_) total_weight += c.weight;
  if (cut_top_p) {
    const double nucleus_weight = static_cast<double>(config_.top_p) * total_weight;
    double cumulative = 0;
    size_t kept = 0;
    while (kept < candidates_.size()) {
      cumulative += candidates_[kept++].weight;
      if (cumulative >= nucleus_weight) break;
    }
    candidates_.resize(kept);
    total_weight = cumulative;
  }

  // Draw.
  const double target = UniformUnit(rng_) * total_weight;
  double cumulative = 0;
  for (const Candidate& c : candidates_) {
    cumulative += c.weight;
    if (target < cumulative) return c.token;
  }
  return candidates_.back().token;  // rounding left `target` at the very top
}

}  // namespace tessera
