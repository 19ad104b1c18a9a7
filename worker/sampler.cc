// Sampling in four steps: process (bias, masks, penalties, into a scratch row
// only when any applies), weigh, cut (min_p, top-k, then top-p over the
// renormalized remainder, as Hugging Face chains its warpers), draw. Cuts
// order tokens by processed logit (ties: lower id first), not by weight, so
// that the order is exact even when exp() rounds two weights to the same
// double; top_k = 1 and a tiny top_p are therefore exactly greedy.
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

bool InRow(int32_t token, size_t size) { return token >= 0 && static_cast<size_t>(token) < size; }

// log of the softmax's normalizer over the sanitized row, and how many +inf
// logits it has (they share all the mass); -inf when every logit is -inf.
struct LogNormalizer {
  double max_logit = kNegInf;
  double log_sum = 0;  // log(sum exp(logit - max)) when max is finite
  int64_t infinite = 0;
};

LogNormalizer NormalizerOf(absl::Span<const float> logits) {
  LogNormalizer n;
  for (float logit : logits) {
    const float l = SanitizedLogit(logit);
    n.max_logit = std::max<double>(n.max_logit, l);
    n.infinite += l == kPosInf;
  }
  if (n.max_logit == kNegInf || n.max_logit == kPosInf) return n;
  double sum = 0;
  for (float logit : logits) sum += std::exp(static_cast<double>(SanitizedLogit(logit)) - n.max_logit);
  n.log_sum = std::log(sum);
  return n;
}

float LogprobWith(const LogNormalizer& n, float logit) {
  const float l = SanitizedLogit(logit);
  if (n.max_logit == kNegInf || l == kNegInf) return kNegInf;
  if (n.max_logit == kPosInf) return l == kPosInf ? static_cast<float>(-std::log(static_cast<double>(n.infinite))) : kNegInf;
  return static_cast<float>(static_cast<double>(l) - n.max_logit - n.log_sum);
}

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

float TokenLogprobOf(absl::Span<const float> logits, int32_t token) {
  if (!InRow(token, logits.size())) return kNegInf;
  return LogprobWith(NormalizerOf(logits), logits[token]);
}

Sampler::Sampler(const SamplingConfig& config) : config_(config), rng_(config.seed) {
  config_.logprobs = std::min(config_.logprobs, kMaxTopLogprobs);
}

bool Sampler::Processes() const {
  const bool repetition = config_.repetition_penalty > 0 && config_.repetition_penalty != 1;
  return repetition || config_.presence_penalty != 0 || config_.frequency_penalty != 0 || !config_.logit_bias.empty() ||
         (emitted_ < config_.min_tokens && !config_.min_tokens_masked_ids.empty());
}

absl::Span<const float> Sampler::Processed(absl::Span<const float> logits) {
  const size_t vocab = logits.size();
  if (output_counts_.size() != vocab) {  // the first token (allocates once per request)
    output_counts_.assign(vocab, 0);
    seen_.assign(vocab, 0);
    seen_tokens_.clear();
    output_tokens_.clear();
    for (int32_t id : config_.prompt_token_ids) {
      if (InRow(id, vocab) && !seen_[id]) {
        seen_[id] = 1;
        seen_tokens_.push_back(id);
      }
    }
  }
  if (!Processes()) return logits;
  processed_.assign(logits.begin(), logits.end());
  for (const auto& [id, bias] : config_.logit_bias) {
    if (InRow(id, vocab)) processed_[id] += bias;
  }
  if (emitted_ < config_.min_tokens) {
    for (int32_t id : config_.min_tokens_masked_ids) {
      if (InRow(id, vocab)) processed_[id] = kNegInf;
    }
  }
  const float repetition = config_.repetition_penalty;
  if (repetition > 0 && repetition != 1) {
    for (int32_t id : seen_tokens_) {
      float& l = processed_[id];
      l = l > 0 ? l / repetition : l * repetition;
    }
  }
  if (config_.presence_penalty != 0 || config_.frequency_penalty != 0) {
    for (int32_t id : output_tokens_) {
      processed_[id] -= config_.frequency_penalty * static_cast<float>(output_counts_[id]) + config_.presence_penalty;
    }
  }
  return processed_;
}

void Sampler::Record(int32_t token) {
  ++emitted_;
  if (!InRow(token, output_counts_.size())) return;
  if (output_counts_[token]++ == 0) output_tokens_.push_back(token);
  if (!seen_[token]) {
    seen_[token] = 1;
    seen_tokens_.push_back(token);
  }
}

int32_t Sampler::Sample(absl::Span<const float> logits) {
  const int32_t token = Choose(Processed(logits));
  Record(token);
  return token;
}

SampledToken Sampler::SampleDetailed(absl::Span<const float> logits) {
  SampledToken sampled;
  sampled.token = Choose(Processed(logits));
  Record(sampled.token);
  if (config_.logprobs >= 0) FillLogprobs(logits, sampled);
  return sampled;
}

void Sampler::FillLogprobs(absl::Span<const float> logits, SampledToken& sampled) const {
  const LogNormalizer normalizer = NormalizerOf(logits);
  sampled.has_logprobs = true;
  sampled.logprob = InRow(sampled.token, logits.size()) ? LogprobWith(normalizer, logits[sampled.token]) : kNegInf;
  // The top N by logit (ties: lower id first), by insertion into a sorted
  // array of at most kMaxTopLogprobs: no allocation.
  const int32_t n = std::min<int64_t>(config_.logprobs, static_cast<int64_t>(logits.size()));
  sampled.top_count = 0;
  std::array<std::pair<float, int32_t>, kMaxTopLogprobs> best{};
  for (size_t i = 0; i < logits.size() && n > 0; ++i) {
    const float l = SanitizedLogit(logits[i]);
    if (sampled.top_count == n && !(l > best[n - 1].first)) continue;
    int32_t at = std::min(sampled.top_count, n - 1);
    while (at > 0 && l > best[at - 1].first) {
      best[at] = best[at - 1];
      --at;
    }
    best[at] = {l, static_cast<int32_t>(i)};
    sampled.top_count = std::min(sampled.top_count + 1, n);
  }
  for (int32_t i = 0; i < sampled.top_count; ++i) {
    sampled.top[i] = {best[i].second, LogprobWith(normalizer, best[i].first)};
  }
}

int32_t Sampler::Choose(absl::Span<const float> logits) {
  if (!(config_.temperature > 0)) return GreedyToken(logits);
  float max_logit = kNegInf;
  for (float logit : logits) max_logit = std::max(max_logit, SanitizedLogit(logit));
  if (max_logit == kNegInf) return 0;  // also the empty row

  // Weigh. Subtracting the max before dividing by T keeps tiny temperatures
  // finite; +inf logits take all the mass. min_p cuts here: a weight is the
  // token's probability relative to the most likely one.
  candidates_.clear();
  const double inv_temperature = 1.0 / static_cast<double>(config_.temperature);
  const double min_weight = config_.min_p > 0 ? static_cast<double>(config_.min_p) : 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float logit = SanitizedLogit(logits[i]);
    double weight = 0;
    if (max_logit == kPosInf) {
      weight = logit == kPosInf ? 1.0 : 0.0;
    } else {
      weight = std::exp((static_cast<double>(logit) - max_logit) * inv_temperature);
    }
    // NaN weight fails too.
    if (weight > 0 && weight >= min_weight) candidates_.push_back({static_cast<int32_t>(i), logit, weight});
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
