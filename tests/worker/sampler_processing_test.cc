// The sampler's logit processing against a plain CPU reference written here
// from vLLM's definitions: logit_bias added, stop ids / EOS masked before
// min_tokens, repetition penalty over prompt + generated tokens (divide a
// positive logit, multiply a negative one), frequency and presence penalties
// over generated tokens, min_p after temperature; and log-probabilities
// equal to the log-softmax of the raw logits, with the top-N alternatives.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "worker/sampler.h"

namespace tessera {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Log-probabilities are computed in double and stored as float.
constexpr double kLogprobTolerance = 1e-5;

std::vector<float> RandomLogits(std::mt19937& rng, int vocab) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(vocab);
  for (float& l : logits) l = normal(rng);
  return logits;
}

// The reference: what the processed row must be after `generated`.
std::vector<float> ReferenceProcessed(const SamplingConfig& config, std::vector<float> logits,
                                      const std::vector<int32_t>& generated) {
  for (const auto& [id, bias] : config.logit_bias) logits[id] += bias;
  if (static_cast<int32_t>(generated.size()) < config.min_tokens) {
    for (int32_t id : config.min_tokens_masked_ids) logits[id] = kNegInf;
  }
  std::map<int32_t, int> counts;
  for (int32_t id : generated) ++counts[id];
  std::vector<bool> seen(logits.size(), false);
  for (int32_t id : config.prompt_token_ids) seen[id] = true;
  for (int32_t id : generated) seen[id] = true;
  for (size_t id = 0; id < logits.size(); ++id) {
    if (!seen[id]) continue;
    logits[id] = logits[id] > 0 ? logits[id] / config.repetition_penalty : logits[id] * config.repetition_penalty;
  }
  for (const auto& [id, count] : counts) {
    logits[id] -= config.frequency_penalty * static_cast<float>(count) + config.presence_penalty;
  }
  return logits;
}

std::vector<double> ReferenceLogSoftmax(const std::vector<float>& logits) {
  double max = -std::numeric_limits<double>::infinity();
  for (float l : logits) max = std::max<double>(max, l);
  double sum = 0;
  for (float l : logits) sum += std::exp(l - max);
  std::vector<double> out;
  for (float l : logits) out.push_back(l - max - std::log(sum));
  return out;
}

SamplingConfig PenaltyConfig() {
  SamplingConfig config;
  config.repetition_penalty = 1.35f;
  config.presence_penalty = 0.6f;
  config.frequency_penalty = 0.45f;
  config.logit_bias = {{3, 2.5f}, {17, -4.0f}, {40, 1.25f}};
  config.prompt_token_ids = {5, 9, 9, 12, 33, 5};
  config.min_tokens = 4;
  config.min_tokens_masked_ids = {0, 7};
  return config;
}

TEST(SamplerProcessingTest, GreedyMatchesTheReferenceWithEveryPenaltyAndBias) {
  std::mt19937 rng(20240611);
  for (int trial = 0; trial < 20; ++trial) {
    SamplingConfig config = PenaltyConfig();
    Sampler sampler(config);
    std::vector<int32_t> generated;
    for (int step = 0; step < 24; ++step) {
      std::vector<float> logits = RandomLogits(rng, 48);
      // Make the masked ids and a repeated token attractive so the rules decide.
      logits[7] = 20.0f;
      if (!generated.empty()) logits[generated.back()] += 6.0f;
      const std::vector<float> expected = ReferenceProcessed(config, logits, generated);
      const int32_t want = static_cast<int32_t>(std::max_element(expected.begin(), expected.end()) - expected.begin());
      const int32_t got = sampler.Sample(logits);
      ASSERT_EQ(got, want) << "trial " << trial << " step " << step;
      if (step < config.min_tokens) {
        EXPECT_NE(got, 7) << "a masked id before min_tokens";
      }
      generated.push_back(got);
    }
    EXPECT_EQ(sampler.emitted(), 24);
  }
}

// With a temperature, the penalized sampler draws exactly what a plain
// sampler of the same seed draws from the reference's processed rows: the
// processing is the only difference, and the random stream is the same.
TEST(SamplerProcessingTest, SamplingEqualsAPlainSamplerOnTheReferenceRows) {
  std::mt19937 rng(77);
  for (float min_p : {0.0f, 0.05f, 0.3f}) {
    SamplingConfig config = PenaltyConfig();
    config.temperature = 0.9f;
    config.top_k = 20;
    config.top_p = 0.9f;
    config.min_p = min_p;
    config.seed = 99;
    SamplingConfig plain;
    plain.temperature = config.temperature;
    plain.top_k = config.top_k;
    plain.top_p = config.top_p;
    plain.min_p = config.min_p;
    plain.seed = config.seed;
    Sampler penalized(config);
    Sampler reference(plain);
    std::vector<int32_t> generated;
    for (int step = 0; step < 64; ++step) {
      const std::vector<float> logits = RandomLogits(rng, 40);
      const int32_t want = reference.Sample(ReferenceProcessed(config, logits, generated));
      const int32_t got = penalized.Sample(logits);
      ASSERT_EQ(got, want) << "min_p " << min_p << " step " << step;
      generated.push_back(got);
    }
  }
}

TEST(SamplerProcessingTest, MinPKeepsExactlyTheTokensAboveTheThreshold) {
  // Probabilities at T=1: 0.5, 0.25, 0.125, 0.0625, ... ; min_p 0.2 keeps
  // p >= 0.1: the first three, renormalized.
  const std::vector<float> logits = {0.0f, -std::log(2.0f), -std::log(4.0f), -std::log(8.0f), -std::log(16.0f)};
  SamplingConfig config;
  config.temperature = 1.0f;
  config.min_p = 0.2f;
  config.seed = 5;
  Sampler sampler(config);
  std::vector<int> counts(logits.size(), 0);
  constexpr int kDraws = 70000;
  for (int i = 0; i < kDraws; ++i) ++counts[sampler.Sample(logits)];
  const double total = 0.5 + 0.25 + 0.125;
  const std::vector<double> expected = {0.5 / total, 0.25 / total, 0.125 / total, 0, 0};
  for (size_t i = 0; i < logits.size(); ++i) {
    const double p = expected[i];
    const double tolerance = 5 * std::sqrt(std::max(p * (1 - p), 1e-9) / kDraws);  // five standard errors
    EXPECT_NEAR(static_cast<double>(counts[i]) / kDraws, p, tolerance + 1e-12) << "token " << i;
  }
}

TEST(SamplerProcessingTest, LogitBiasCanBanAndForceTokens) {
  const std::vector<float> logits = {1.0f, 5.0f, 2.0f, 0.5f};
  SamplingConfig ban;
  ban.logit_bias = {{1, -100.0f}};
  EXPECT_EQ(Sampler(ban).Sample(logits), 2);
  SamplingConfig force;
  force.temperature = 1.0f;
  force.logit_bias = {{3, 100.0f}};
  Sampler forced(force);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(forced.Sample(logits), 3);
}

TEST(SamplerProcessingTest, MinTokensMasksStopIdsAndEosOnlyUntilReached) {
  std::vector<float> logits(10, 0.0f);
  logits[2] = 9.0f;  // EOS, the greedy choice whenever allowed
  logits[4] = 8.0f;  // a stop id
  logits[6] = 1.0f;
  SamplingConfig config;
  config.min_tokens = 3;
  config.min_tokens_masked_ids = {2, 4};
  Sampler sampler(config);
  EXPECT_EQ(sampler.Sample(logits), 6);
  EXPECT_EQ(sampler.Sample(logits), 6);
  EXPECT_EQ(sampler.Sample(logits), 6);
  EXPECT_EQ(sampler.Sample(logits), 2) << "after min_tokens, EOS is allowed again";
}

TEST(SamplerProcessingTest, LogprobsAreTheLogSoftmaxOfTheRawLogitsWithSortedAlternatives) {
  std::mt19937 rng(3);
  SamplingConfig config = PenaltyConfig();
  config.temperature = 0.7f;
  config.seed = 8;
  config.logprobs = 5;
  Sampler detailed(config);
  Sampler plain(config);
  for (int step = 0; step < 30; ++step) {
    std::vector<float> logits = RandomLogits(rng, 64);
    logits[10] = logits[11];  // a tie among the alternatives, maybe
    const SampledToken sampled = detailed.SampleDetailed(logits);
    ASSERT_EQ(sampled.token, plain.Sample(logits)) << "SampleDetailed draws as Sample does";
    ASSERT_TRUE(sampled.has_logprobs);
    const std::vector<double> reference = ReferenceLogSoftmax(logits);
    EXPECT_NEAR(sampled.logprob, reference[sampled.token], kLogprobTolerance);
    EXPECT_NEAR(TokenLogprobOf(logits, sampled.token), reference[sampled.token], kLogprobTolerance);
    std::vector<int32_t> order(logits.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    ASSERT_EQ(sampled.top_count, 5);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(sampled.top[i].token, order[i]) << "rank " << i;
      EXPECT_NEAR(sampled.top[i].logprob, reference[order[i]], kLogprobTolerance);
    }
  }
}

TEST(SamplerProcessingTest, LogprobsOfDegenerateRows) {
  SamplingConfig config;
  config.logprobs = 3;
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  SampledToken two_inf = Sampler(config).SampleDetailed(std::vector<float>{1.0f, inf, nan, inf});
  EXPECT_EQ(two_inf.token, 1);
  EXPECT_NEAR(two_inf.logprob, -std::log(2.0), kLogprobTolerance);
  EXPECT_EQ(two_inf.top[0].token, 1);
  EXPECT_EQ(two_inf.top[1].token, 3);
  EXPECT_EQ(two_inf.top[2].logprob, kNegInf);
  SampledToken none = Sampler(config).SampleDetailed(std::vector<float>{nan, kNegInf});
  EXPECT_EQ(none.token, 0);
  EXPECT_EQ(none.logprob, kNegInf);
  EXPECT_EQ(none.top_count, 2);
  SamplingConfig zero;
  zero.logprobs = 0;
  SampledToken chosen_only = Sampler(zero).SampleDetailed(std::vector<float>{0.0f, 0.0f});
  EXPECT_TRUE(chosen_only.has_logprobs);
  EXPECT_EQ(chosen_only.top_count, 0);
  EXPECT_NEAR(chosen_only.logprob, -std::log(2.0), kLogprobTolerance);
  EXPECT_FALSE(Sampler(SamplingConfig()).SampleDetailed(std::vector<float>{1.0f}).has_logprobs);
}

}  // namespace
}  // namespace tessera
