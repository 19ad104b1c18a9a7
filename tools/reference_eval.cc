// Reference comparison: error norms, greedy agreement, and the report table.
#include "tools/reference_eval.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "model/safetensors.h"

namespace tessera {
namespace {

// Lengths named by the file's tensors "input_ids.L", ascending.
std::vector<int64_t> ReferenceLengths(const SafetensorsFile& file) {
  std::vector<int64_t> lengths;
  for (const std::string& name : file.TensorNames()) {
    std::vector<std::string> parts = absl::StrSplit(name, '.');
    int64_t length = 0;
    if (parts.size() == 2 && parts[0] == "input_ids" && absl::SimpleAtoi(parts[1], &length)) {
      lengths.push_back(length);
    }
  }
  std::sort(lengths.begin(), lengths.end());
  return lengths;
}

absl::StatusOr<LengthReport> EvaluateLength(const SafetensorsFile& file, int64_t length,
                                            const GreedyRunner& runner, double tolerance, bool require_greedy) {
  const std::string suffix = absl::StrCat(".", length);
  ASSIGN_OR_RETURN(std::vector<int64_t> ids64, ReadInt64(file, "input_ids" + suffix));
  ASSIGN_OR_RETURN(std::vector<float> ref_logits, ReadFloat32(file, "logits" + suffix));
  ASSIGN_OR_RETURN(std::vector<int64_t> ref_greedy, ReadInt64(file, "greedy" + suffix));
  ASSIGN_OR_RETURN(std::vector<float> ref_step_logits, ReadFloat32(file, "logits_greedy" + suffix));
  std::vector<int32_t> prompt(ids64.begin(), ids64.end());

  const int steps = static_cast<int>(ref_greedy.size());
  ASSIGN_OR_RETURN(GreedyRun run, runner(prompt, steps));
  if (run.prompt_logits.size() != ref_logits.size() || run.step_logits.size() != ref_step_logits.size() ||
      static_cast<int>(run.tokens.size()) != steps) {
    return absl::InternalError(absl::StrCat("length ", length, ": runner returned ", run.prompt_logits.size(),
                                            " prompt logits, ", run.step_logits.size(), " step logits, ",
                                            run.tokens.size(), " tokens; the reference has ", ref_logits.size(),
                                            ", ", ref_step_logits.size(), ", ", steps));
  }

  GreedyRun reference;
  reference.prompt_logits = std::move(ref_logits);
  reference.tokens.assign(ref_greedy.begin(), ref_greedy.end());
  reference.step_logits = std::move(ref_step_logits);
  LengthReport r = CompareGreedyRuns(run, reference, tolerance, require_greedy);
  r.length = length;
  return r;
}

}  // namespace

LengthReport CompareGreedyRuns(const GreedyRun& ours, const GreedyRun& reference, double rel_l2_tolerance,
                               bool require_identical_greedy) {
  LengthReport r;
  r.prompt_rel_l2 = RelativeL2(ours.prompt_logits, reference.prompt_logits);
  r.prompt_max_abs = MaxAbsDiff(ours.prompt_logits, reference.prompt_logits);
  const int steps = static_cast<int>(reference.tokens.size());
  r.greedy_total = steps;
  while (r.greedy_matched < steps && r.greedy_matched < static_cast<int>(ours.tokens.size()) &&
         ours.tokens[r.greedy_matched] == reference.tokens[r.greedy_matched]) {
    ++r.greedy_matched;
  }
  const size_t vocab = reference.step_logits.size() / std::max(steps, 1);
  const size_t compared = std::min(steps, r.greedy_matched + 1) * vocab;
  const absl::Span<const float> our_steps = absl::MakeConstSpan(ours.step_logits).subspan(0, compared);
  const absl::Span<const float> their_steps = absl::MakeConstSpan(reference.step_logits).subspan(0, compared);
  r.decode_rel_l2 = RelativeL2(our_steps, their_steps);
  r.decode_max_abs = MaxAbsDiff(our_steps, their_steps);
  r.passed = r.prompt_rel_l2 <= rel_l2_tolerance && r.decode_rel_l2 <= rel_l2_tolerance &&
             (!require_identical_greedy || r.greedy_matched == steps);
  return r;
}

double RelativeL2(absl::Span<const float> ours, absl::Span<const float> reference) {
  if (ours.size() != reference.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const double d = static_cast<double>(ours[i]) - reference[i];
    diff += d * d;
    norm += static_cast<double>(reference[i]) * reference[i];
  }
  if (std::isnan(diff)) return std::numeric_limits<double>::infinity();
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

double MaxAbsDiff(absl::Span<const float> ours, absl::Span<const float> reference) {
  if (ours.size() != reference.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const double d = std::fabs(static_cast<double>(ours[i]) - reference[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, d);
  }
  return worst;
}

absl::StatusOr<std::vector<LengthReport>> EvaluateAgainstReference(const std::string& reference_path,
                                                                   const GreedyRunner& runner,
                                                                   double rel_l2_tolerance,
                                                                   bool require_identical_greedy) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(reference_path));
  const std::vector<int64_t> lengths = ReferenceLengths(*file);
  if (lengths.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(reference_path, ": no 'input_ids.L' tensors"));
  }
  std::vector<LengthReport> reports;
  for (int64_t length : lengths) {
    ASSIGN_OR_RETURN(LengthReport r, EvaluateLength(*file, length, runner, rel_l2_tolerance, require_identical_greedy));
    reports.push_back(r);
  }
  return reports;
}

std::string FormatReports(const std::vector<LengthReport>& reports, double rel_l2_tolerance,
                          bool require_identical_greedy) {
  std::string out = absl::StrFormat("%8s  %14s  %14s  %14s  %14s  %8s  %s\n", "length", "prompt_rel_l2",
                                    "prompt_max_abs", "decode_rel_l2", "decode_max_abs", "greedy", "result");
  bool all = true;
  for (const LengthReport& r : reports) {
    absl::StrAppendFormat(&out, "%8d  %14.3e  %14.3e  %14.3e  %14.3e  %5d/%-2d  %s\n", r.length, r.prompt_rel_l2,
                          r.prompt_max_abs, r.decode_rel_l2, r.decode_max_abs, r.greedy_matched, r.greedy_total,
                          r.passed ? "ok" : "FAIL");
    all = all && r.passed;
  }
  absl::StrAppendFormat(&out, "%s: %d lengths, tolerance relative L2 <= %.1e, %s\n", all ? "PASS" : "FAIL",
                        reports.size(), rel_l2_tolerance,
                        require_identical_greedy ? "greedy identical" : "greedy reported, not required");
  return out;
}

}  // namespace tessera
