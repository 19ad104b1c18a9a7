// Compares a model runner against a Hugging Face reference file
// (reference.safetensors: input_ids.L, logits.L, greedy.L, logits_greedy.L for
// each prompt length L). Shared by `tessera eval` and the golden tests so the
// number a user sees is the number CI asserts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace tessera {

// What a runner returns for one prompt.
struct GreedyRun {
  std::vector<float> prompt_logits;  // (L, vocab): logits at every prompt position
  std::vector<int32_t> tokens;       // (steps): greedy continuation
  std::vector<float> step_logits;    // (steps, vocab): the logits behind each chosen token
};

// Runs a prompt: full prompt logits, then `steps` greedy tokens through the
// cached decode path.
using GreedyRunner = std::function<absl::StatusOr<GreedyRun>(absl::Span<const int32_t> prompt, int steps)>;

struct LengthReport {
  int64_t length = 0;
  double prompt_rel_l2 = 0;    // ‖ours − ref‖₂ / ‖ref‖₂ over all prompt logits
  double prompt_max_abs = 0;
  double decode_rel_l2 = 0;    // the same over the decode-step logits, through the first greedy mismatch
  double decode_max_abs = 0;
  int greedy_matched = 0;      // leading tokens identical to the reference
  int greedy_total = 0;
  bool passed = false;
};

// `ours` against `reference` (same prompt, same number of steps): prompt
// logits over every row; greedy tokens; step logits through the first greedy
// mismatch (step i's logits follow the tokens before it, so later rows are no
// longer comparable). `passed`: both errors within `rel_l2_tolerance` and, when
// `require_identical_greedy`, every token the same. `length` is left 0.
LengthReport CompareGreedyRuns(const GreedyRun& ours, const GreedyRun& reference, double rel_l2_tolerance,
                               bool require_identical_greedy);

// Runs every length in the reference file. Fails (status) only when the file
// or the runner fails; tolerance failures are reported in `passed`, which
// also needs every greedy token identical unless !require_identical_greedy
// (bf16, where a near-tie may flip a token of a tiny random model).
absl::StatusOr<std::vector<LengthReport>> EvaluateAgainstReference(const std::string& reference_path,
                                                                   const GreedyRunner& runner,
                                                                   double rel_l2_tolerance,
                                                                   bool require_identical_greedy = true);

// ‖a − b‖₂ / ‖b‖₂ and max |a − b|.
double RelativeL2(absl::Span<const float> ours, absl::Span<const float> reference);
double MaxAbsDiff(absl::Span<const float> ours, absl::Span<const float> reference);

// One line per length, then a verdict line.
std::string FormatReports(const std::vector<LengthReport>& reports, double rel_l2_tolerance,
                          bool require_identical_greedy = true);

}  // namespace tessera
