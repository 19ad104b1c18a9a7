// Token sampling on the decoding worker: greedy, or softmax(logits / T) cut to
// the top-k tokens and then to the top-p nucleus, drawn from a per-request
// std::mt19937_64 so that a request's seed fixes its samples.
//
// Why it never fails: the coordinator validated the request, and a bad logit
// row must not take the worker down. NaN logits count as -inf; +inf logits
// share all the mass equally; a row of nothing but -inf/NaN gives token 0.
// Every returned id is in [0, logits.size()) (0 for an empty row).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "absl/types/span.h"

namespace tessera {

struct SamplingConfig {
  float temperature = 0;  // <= 0 (or NaN): greedy
  int32_t top_k = 0;      // 0 (or >= vocab): no cut
  float top_p = 1;        // 0 or >= 1 (or NaN): no cut
  uint64_t seed = 0;      // seeds the std::mt19937_64 once, at construction
};

// Greedy choice with NaN as -inf: the first index of the largest value, as
// torch.argmax picks among ties; 0 when every value is -inf/NaN or none.
int32_t GreedyToken(absl::Span<const float> logits);

// One request's sampler: keeps the random stream across its tokens, so the
// n-th Sample of two samplers with equal configs and logits is equal.
class Sampler {
 public:
  explicit Sampler(const SamplingConfig& config);

  // logits: (vocab_size,) raw model output for the next position.
  int32_t Sample(absl::Span<const float> logits);

 private:
  struct Candidate {
    int32_t token;
    float logit;    // sanitized (NaN → -inf); orders the cuts
    double weight;  // exp((logit - max_logit) / T), unnormalized
  };

  SamplingConfig config_;
  std::mt19937_64 rng_;
  std::vector<Candidate> candidates_;  // scratch, reused across tokens
};

}  // namespace tessera
