// Sampler: greedy is torch.argmax; the cuts keep exactly their sets; a seed
// fixes the samples; and over many draws the frequencies are softmax(logits/T)
// renormalized over the kept set (chi-square and max-abs-diff, fixed seed).
//
// Why: sampling bugs do not crash, they shift a distribution. The frequency
// tests are the only thing that catches a wrong temperature or an off-by-one
// cut, and the edge cases pin "never an out-of-range id" on bad logits.
#include "worker/sampler.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace tessera {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// softmax(logits / T) over `kept` tokens, zero elsewhere, in double.
std::vector<double> ExpectedProbs(const std::vector<float>& logits, double temperature, const std::set<int>& kept) {
  double max_logit = -kInf;
  for (int t : kept) max_logit = std::max(max_logit, static_cast<double>(logits[t]));
  std::vector<double> probs(logits.size(), 0.0);
  double total = 0;
  for (int t : kept) total += probs[t] = std::exp((logits[t] - max_logit) / temperature);
  for (double& p : probs) p /= total;
  return probs;
}

std::set<int> AllTokens(size_t n) {
  std::set<int> all;
  for (size_t i = 0; i < n; ++i) all.insert(static_cast<int>(i));
  return all;
}

// Draws `samples` tokens and checks them against `expected` two ways: every
// frequency within 4.5 standard errors of its probability (tokens of
// probability 0 never drawn), and Pearson's chi-square below the 0.999
// quantile for its degrees of freedom.
void ExpectFrequencies(const SamplingConfig& config, const std::vector<float>& logits,
                       const std::vector<double>& expected, int samples) {
  Sampler sampler(config);
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < samples; ++i) {
    const int32_t token = sampler.Sample(logits);
    ASSERT_GE(token, 0);
    ASSERT_LT(token, static_cast<int32_t>(logits.size()));
    ++counts[token];
  }
  double chi_square = 0;
  int degrees_of_freedom = -1;
  for (size_t t = 0; t < logits.size(); ++t) {
    const double frequency = static_cast<double>(counts[t]) / samples;
    if (expected[t] == 0) {
      EXPECT_EQ(counts[t], 0) << "token " << t << " is outside the kept set";
      continue;
    }
    const double standard_error = std::sqrt(expected[t] * (1 - expected[t]) / samples);
    EXPECT_NEAR(frequency, expected[t], 4.5 * standard_error + 1e-12) << "token " << t;
    const double expected_count = expected[t] * samples;
    chi_square += (counts[t] - expected_count) * (counts[t] - expected_count) / expected_count;
    ++degrees_of_freedom;
  }
  // 0.999 quantiles of chi-square for 1..9 degrees of freedom.
  constexpr double kChiSquare999[] = {10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88};
  ASSERT_GE(degrees_of_freedom, 1);
  ASSERT_LE(degrees_of_freedom, 9);
  EXPECT_LT(chi_square, kChiSquare999[degrees_of_freedom - 1]);
}

const std::vector<float> kLogits = {1.0f, 2.5f, -0.5f, 2.0f, 0.0f, -3.0f, 1.5f};  // (vocab = 7,)

TEST(GreedyTokenTest, FirstIndexOfTheMax) {
  EXPECT_EQ(GreedyToken(kLogits), 1);
  EXPECT_EQ(GreedyToken(std::vector<float>{0.f, 3.f, 1.f, 3.f}), 1);
  EXPECT_EQ(GreedyToken(std::vector<float>{5.f, 5.f}), 0);
  EXPECT_EQ(GreedyToken(std::vector<float>{-1.f}), 0);
}

TEST(GreedyTokenTest, NaNIsMinusInfinity) {
  EXPECT_EQ(GreedyToken(std::vector<float>{kNaN, -1e30f, kNaN}), 1);
  EXPECT_EQ(GreedyToken(std::vector<float>{kNaN, kNaN}), 0);
  EXPECT_EQ(GreedyToken(std::vector<float>{-kInf, -kInf, -kInf}), 0);
  EXPECT_EQ(GreedyToken(std::vector<float>{-kInf, kNaN, kInf, kInf}), 2);
  EXPECT_EQ(GreedyToken(std::vector<float>{}), 0);
}

TEST(SamplerTest, TemperatureZeroIsGreedyWithTiesToFirst) {
  Sampler sampler(SamplingConfig{.temperature = 0, .top_k = 0, .top_p = 1, .seed = 7});
  const std::vector<float> tied = {0.5f, 4.0f, -2.0f, 4.0f, 4.0f};
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(sampler.Sample(kLogits), 1);
    EXPECT_EQ(sampler.Sample(tied), 1);
  }
  Sampler negative(SamplingConfig{.temperature = -1.0f});
  EXPECT_EQ(negative.Sample(tied), 1);
  Sampler not_a_number(SamplingConfig{.temperature = kNaN});
  EXPECT_EQ(not_a_number.Sample(tied), 1);
}

TEST(SamplerTest, TopKOneIsGreedyAtAnyTemperature) {
  const std::vector<float> tied = {0.5f, 4.0f, -2.0f, 4.0f, 4.0f};
  // Logits that differ by less than exp() can tell apart at a huge temperature.
  const std::vector<float> close = {1.0f, std::nextafter(1.0f, 2.0f), 1.0f};
  for (float temperature : {1e-30f, 0.1f, 1.0f, 10.0f, 1e30f, kInf}) {
    Sampler sampler(SamplingConfig{.temperature = temperature, .top_k = 1, .top_p = 1, .seed = 3});
    for (int i = 0; i < 50; ++i) {
      EXPECT_EQ(sampler.Sample(kLogits), GreedyToken(kLogits)) << "T=" << temperature;
      EXPECT_EQ(sampler.Sample(tied), 1) << "T=" << temperature;
      EXPECT_EQ(sampler.Sample(close), 1) << "T=" << temperature;
    }
  }
}

TEST(SamplerTest, TinyTopPIsGreedy) {
  const std::vector<float> tied = {0.5f, 4.0f, -2.0f, 4.0f, 4.0f};
  for (float temperature : {0.5f, 1.0f, 100.0f}) {
    Sampler sampler(SamplingConfig{.temperature = temperature, .top_k = 0, .top_p = 1e-6f, .seed = 11});
    for (int i = 0; i < 50; ++i) {
      EXPECT_EQ(sampler.Sample(kLogits), 1) << "T=" << temperature;
      EXPECT_EQ(sampler.Sample(tied), 1) << "T=" << temperature;
    }
  }
}

TEST(SamplerTest, SameSeedSameSequenceOtherSeedOtherSequence) {
  const SamplingConfig config{.temperature = 1.3f, .top_k = 5, .top_p = 0.95f, .seed = 1234};
  Sampler a(config);
  Sampler b(config);
  SamplingConfig other_config = config;
  other_config.seed = 1235;
  Sampler other(other_config);
  std::vector<int32_t> from_a, from_b, from_other;
  for (int i = 0; i < 200; ++i) {
    from_a.push_back(a.Sample(kLogits));
    from_b.push_back(b.Sample(kLogits));
    from_other.push_back(other.Sample(kLogits));
  }
  EXPECT_EQ(from_a, from_b);
  EXPECT_NE(from_a, from_other);
}

TEST(SamplerTest, FrequenciesMatchSoftmaxOverTemperature) {
  for (float temperature : {0.7f, 1.0f, 2.5f}) {
    SCOPED_TRACE(testing::Message() << "T=" << temperature);
    ExpectFrequencies(SamplingConfig{.temperature = temperature, .top_k = 0, .top_p = 1, .seed = 42}, kLogits,
                      ExpectedProbs(kLogits, temperature, AllTokens(kLogits.size())), 200000);
  }
}

TEST(SamplerTest, TopKKeepsTheKLargestRenormalized) {
  // Largest three: tokens 1 (2.5), 3 (2.0), 6 (1.5). top_k >= vocab is no cut.
  ExpectFrequencies(SamplingConfig{.temperature = 1.0f, .top_k = 3, .top_p = 1, .seed = 5}, kLogits,
                    ExpectedProbs(kLogits, 1.0, {1, 3, 6}), 100000);
  ExpectFrequencies(SamplingConfig{.temperature = 1.0f, .top_k = 100, .top_p = 1, .seed = 5}, kLogits,
                    ExpectedProbs(kLogits, 1.0, AllTokens(kLogits.size())), 100000);
}

TEST(SamplerTest, TopKBreaksTiesByLowerId) {
  const std::vector<float> tied = {3.0f, 1.0f, 3.0f, 3.0f, 0.0f};
  ExpectFrequencies(SamplingConfig{.temperature = 1.0f, .top_k = 2, .top_p = 1, .seed = 9}, tied,
                    ExpectedProbs(tied, 1.0, {0, 2}), 50000);
}

TEST(SamplerTest, TopPKeepsTheSmallestSetReachingP) {
  // softmax(kLogits) sorted: 1: 0.4285, 3: 0.2599, 6: 0.1577, 0: 0.0956, ...
  const std::vector<double> probs = ExpectedProbs(kLogits, 1.0, AllTokens(kLogits.size()));
  ASSERT_NEAR(probs[1], 0.4285, 0.0001);
  ASSERT_NEAR(probs[1] + probs[3], 0.6884, 0.0001);
  ASSERT_NEAR(probs[1] + probs[3] + probs[6], 0.8461, 0.0001);
  ExpectFrequencies(SamplingConfig{.temperature = 1.0f, .top_k = 0, .top_p = 0.6f, .seed = 17}, kLogits,
                    ExpectedProbs(kLogits, 1.0, {1, 3}), 100000);
  ExpectFrequencies(SamplingConfig{.temperature = 1.0f, .top_k = 0, .top_p = 0.7f, .seed = 17}, kLogits,
                    ExpectedProbs(kLogits, 1.0, {1, 3, 6}), 100000);
  // top_p = 0 means no cut.
  ExpectFrequencies(SamplingConfig{.temperature = 1.0f, .top_k = 0, .top_p = 0, .seed = 17}, kLogits, probs, 100000);
}

TEST(SamplerTest, TopPReachedExactlyStopsThere) {
  // Two equal halves: top_p = 0.5 is reached by the first token alone.
  const std::vector<float> halves = {1.0f, 1.0f};
  Sampler sampler(SamplingConfig{.temperature = 1.0f, .top_k = 0, .top_p = 0.5f, .seed = 4});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sampler.Sample(halves), 0);
}

TEST(SamplerTest, TopPAppliesAfterTopKOnTheRenormalizedSet) {
  // At T = 2, top_k = 4 keeps {1, 3, 6, 0}; renormalized, {1, 3} hold 0.622
  // and {1, 3, 6} 0.835, so top_p = 0.8 keeps {1, 3, 6}. Over the uncut
  // softmax {1, 3, 6} hold only 0.695: a nucleus taken before renormalizing
  // would keep token 0 as well.
  const std::vector<double> top4 = ExpectedProbs(kLogits, 2.0, {1, 3, 6, 0});
  ASSERT_LT(top4[1] + top4[3], 0.8);
  ASSERT_GT(top4[1] + top4[3] + top4[6], 0.8);
  const std::vector<double> uncut = ExpectedProbs(kLogits, 2.0, AllTokens(kLogits.size()));
  ASSERT_LT(uncut[1] + uncut[3] + uncut[6], 0.8);
  ExpectFrequencies(SamplingConfig{.temperature = 2.0f, .top_k = 4, .top_p = 0.8f, .seed = 23}, kLogits,
                    ExpectedProbs(kLogits, 2.0, {1, 3, 6}), 100000);
}

TEST(SamplerTest, NonFiniteLogitsGiveInRangeIds) {
  const SamplingConfig config{.temperature = 1.0f, .top_k = 0, .top_p = 1, .seed = 1};
  Sampler sampler(config);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(sampler.Sample(std::vector<float>{kNaN, kNaN, kNaN}), 0);
    EXPECT_EQ(sampler.Sample(std::vector<float>{-kInf, -kInf}), 0);
    EXPECT_EQ(sampler.Sample(std::vector<float>{}), 0);
    // NaN never drawn; a single finite value takes everything.
    EXPECT_EQ(sampler.Sample(std::vector<float>{kNaN, -kInf, 0.0f, kNaN}), 2);
    // +inf logits share the mass.
    const int32_t token = sampler.Sample(std::vector<float>{1.0f, kInf, kNaN, kInf, 1e30f});
    EXPECT_TRUE(token == 1 || token == 3) << token;
  }
  // Extreme temperatures stay in range and on the finite tokens.
  const std::vector<float> mixed = {kNaN, 3.0f, -kInf, -1e38f, 1e38f, 0.0f};
  for (float temperature : {1e-45f, 1e-20f, 1e20f, kInf}) {
    Sampler extreme(SamplingConfig{.temperature = temperature, .top_k = 0, .top_p = 0.9f, .seed = 2});
    for (int i = 0; i < 100; ++i) {
      const int32_t token = extreme.Sample(mixed);
      EXPECT_TRUE(token == 1 || token == 3 || token == 4 || token == 5) << "T=" << temperature << " token " << token;
    }
  }
  Sampler cold(SamplingConfig{.temperature = 1e-45f, .top_k = 0, .top_p = 1, .seed = 2});
  EXPECT_EQ(cold.Sample(mixed), 4);
}

TEST(SamplerTest, NegativeTopKIsNoCut) {
  ExpectFrequencies(SamplingConfig{.temperature = 1.0f, .top_k = -3, .top_p = 1, .seed = 31}, kLogits,
                    ExpectedProbs(kLogits, 1.0, AllTokens(kLogits.size())), 50000);
}

}  // namespace
}  // namespace tessera
