// A partial sort of indices for the top N: N is at most 20 and this runs once
// per request, not per token.
#include "coordinator/prompt_logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tessera {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr double kPosInf = std::numeric_limits<double>::infinity();

double Sanitized(float logit) { return std::isnan(logit) ? kNegInf : logit; }

}  // namespace

TokenLogprobs RowLogprobs(absl::Span<const float> row, int32_t token, int32_t top_n) {
  double max = kNegInf;
  int64_t infinite = 0;
  for (float l : row) {
    max = std::max(max, Sanitized(l));
    infinite += Sanitized(l) == kPosInf;
  }
  double log_sum = 0;
  if (max != kNegInf && max != kPosInf) {
    double sum = 0;
    for (float l : row) sum += std::exp(Sanitized(l) - max);
    log_sum = std::log(sum);
  }
  auto logprob = [&](size_t id) -> float {
    const double l = Sanitized(row[id]);
    if (max == kNegInf || l == kNegInf) return static_cast<float>(kNegInf);
    if (max == kPosInf) return l == kPosInf ? static_cast<float>(-std::log(static_cast<double>(infinite))) : static_cast<float>(kNegInf);
    return static_cast<float>(l - max - log_sum);
  };
  TokenLogprobs out;
  out.token_id = token;
  out.logprob = token >= 0 && static_cast<size_t>(token) < row.size() ? logprob(token) : static_cast<float>(kNegInf);
  const size_t n = std::min<size_t>(std::max(top_n, 0), row.size());
  std::vector<int32_t> order(row.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](int32_t a, int32_t b) {
    return Sanitized(row[a]) != Sanitized(row[b]) ? Sanitized(row[a]) > Sanitized(row[b]) : a < b;
  });
  for (size_t i = 0; i < n; ++i) out.top.push_back({order[i], logprob(order[i])});
  return out;
}

std::vector<TokenLogprobs> PromptLogprobs(const Logits& logits, absl::Span<const int32_t> prompt, int32_t top_n) {
  std::vector<TokenLogprobs> out;
  const size_t vocab = static_cast<size_t>(std::max(logits.vocab_size, 0));
  for (size_t i = 1; i < prompt.size() && i <= static_cast<size_t>(std::max(logits.rows, 0)); ++i) {
    if (logits.values.size() < i * vocab) break;
    out.push_back(RowLogprobs(absl::MakeConstSpan(logits.values.data() + (i - 1) * vocab, vocab), prompt[i], top_n));
  }
  return out;
}

}  // namespace tessera
