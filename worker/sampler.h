// Token sampling on the decoding worker, in vLLM's order: logit_bias is added
// and, before min_tokens tokens, stop ids and EOS are masked; then the
// repetition penalty (prompt + generated tokens), the frequency and presence
// penalties (generated tokens); then greedy, or softmax(logits / T) cut by
// min_p, then to the top-k tokens, then to the top-p nucleus, drawn from a
// per-request std::mt19937_64 so that a request's seed fixes its samples.
// The sampler records every token it returns, so the penalties and min_tokens
// need nothing from its caller. Log-probabilities (SampleDetailed) are the
// log-softmax of the raw logits given, before any of the above (vLLM's
// default), with the top-N alternatives.
//
// Why it never fails: the coordinator validated the request, and a bad logit
// row must not take the worker down. NaN logits count as -inf; +inf logits
// share all the mass equally; a row of nothing but -inf/NaN gives token 0.
// Every returned id is in [0, logits.size()) (0 for an empty row).
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace tessera {

// The most alternatives SampleDetailed returns per token.
inline constexpr int32_t kMaxTopLogprobs = 20;

struct SamplingConfig {
  float temperature = 0;  // <= 0 (or NaN): greedy
  int32_t top_k = 0;      // 0 (or >= vocab): no cut
  float top_p = 1;        // 0 or >= 1 (or NaN): no cut
  uint64_t seed = 0;      // seeds the std::mt19937_64 once, at construction
  float repetition_penalty = 1;  // 1 (or <= 0, NaN): none
  float presence_penalty = 0;    // subtracted once per distinct generated token
  float frequency_penalty = 0;   // subtracted once per time a token was generated
  float min_p = 0;               // <= 0 (or NaN): no cut
  std::vector<std::pair<int32_t, float>> logit_bias = {};  // (token id, added to its logit); ids outside the row: ignored
  int32_t min_tokens = 0;                     // before this many tokens, the ids below are masked
  std::vector<int32_t> min_tokens_masked_ids = {};  // stop ids and EOS
  std::vector<int32_t> prompt_token_ids = {};  // the whole prompt's ids (any order, repeats allowed): repetition penalty
  int32_t logprobs = -1;  // < 0: none; else SampleDetailed returns this many alternatives (at most kMaxTopLogprobs)
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
};

// One sampled token and, when the config asks for them, its log-probability
// and the most likely alternatives (most likely first; ties: lower id first).
struct SampledToken {
  int32_t token = 0;
  bool has_logprobs = false;
  float logprob = 0;
  int32_t top_count = 0;
  std::array<TokenLogprob, kMaxTopLogprobs> top{};

  absl::Span<const TokenLogprob> top_logprobs() const { return absl::MakeConstSpan(top.data(), top_count); }
};

// Greedy choice with NaN as -inf: the first index of the largest value, as
// torch.argmax picks among ties; 0 when every value is -inf/NaN or none.
int32_t GreedyToken(absl::Span<const float> logits);

// log-softmax(logits)[token] with NaN as -inf, in double; -inf for an id
// outside the row or a row of nothing but -inf.
float TokenLogprobOf(absl::Span<const float> logits, int32_t token);

// One request's sampler: keeps the random stream and the tokens it returned
// across its tokens, so the n-th Sample of two samplers with equal configs
// and logits is equal.
class Sampler {
 public:
  explicit Sampler(const SamplingConfig& config);

  // logits: (vocab_size,) raw model output for the next position.
  int32_t Sample(absl::Span<const float> logits);
  // The same choice (the same random stream), with log-probabilities when
  // config.logprobs >= 0.
  SampledToken SampleDetailed(absl::Span<const float> logits);

  // Tokens returned so far.
  int32_t emitted() const { return emitted_; }

 private:
  struct Candidate {
    int32_t token;
    float logit;    // sanitized (NaN → -inf); orders the cuts
    double weight;  // exp((logit - max_logit) / T), unnormalized
  };

  bool Processes() const;
  // The row after bias, masks and penalties (the raw row when none apply).
  absl::Span<const float> Processed(absl::Span<const float> logits);
  int32_t Choose(absl::Span<const float> row);
  void Record(int32_t token);
  void FillLogprobs(absl::Span<const float> logits, SampledToken& sampled) const;

  SamplingConfig config_;
  std::mt19937_64 rng_;
  std::vector<Candidate> candidates_;  // scratch, reused across tokens
  std::vector<float> processed_;       // (vocab,) scratch, sized at the first token
  std::vector<int32_t> output_counts_;  // (vocab,) times each token was returned
  std::vector<uint8_t> seen_;           // (vocab,) in the prompt or returned: repetition penalty
  std::vector<int32_t> seen_tokens_;    // the ids with seen_ set
  std::vector<int32_t> output_tokens_;  // the ids with output_counts_ > 0
  int32_t emitted_ = 0;
};

}  // namespace tessera
