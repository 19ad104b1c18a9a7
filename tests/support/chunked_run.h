// One prompt prefilled in pieces (Engine::set_prefill_chunk_tokens) and then
// decoded greedily, compared row by row with the one-pass run: what the
// chunked-prefill tests of every backend check.
#pragma once

#include <algorithm>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/status_macros.h"
#include "tools/engine_greedy_runner.h"
#include "tools/reference_eval.h"
#include "worker/engine.h"

namespace tessera::testing {

struct PieceComparison {
  double prompt = 0;          // relative L2 of all prompt logits
  double worst_row = 0;       // the largest relative L2 of one prompt logits row
  double steps = 0;           // relative L2 of the decode steps' logits
  bool same_tokens = false;   // the greedy continuation
};

// `whole` is the one-pass run of `prompt` for `steps` steps on `engine`. The
// engine prefills in pieces of `piece_tokens` for this run, then in one pass again.
inline absl::StatusOr<PieceComparison> CompareInPieces(Engine& engine, absl::Span<const int32_t> prompt,
                                                       const GreedyRun& whole, int64_t piece_tokens, int steps) {
  engine.set_prefill_chunk_tokens(piece_tokens);
  absl::StatusOr<GreedyRun> run = MakeEngineGreedyRunner(engine)(prompt, steps);
  engine.set_prefill_chunk_tokens(0);
  RETURN_IF_ERROR(run.status());
  const int64_t vocab = engine.config().vocab_size;
  if (run->prompt_logits.size() != whole.prompt_logits.size()) {
    return absl::InternalError("the runs returned different numbers of prompt logits");
  }
  PieceComparison out;
  for (size_t row = 0; row * vocab < whole.prompt_logits.size(); ++row) {
    out.worst_row = std::max(out.worst_row, RelativeL2(absl::MakeConstSpan(run->prompt_logits).subspan(row * vocab, vocab),
                                                       absl::MakeConstSpan(whole.prompt_logits).subspan(row * vocab, vocab)));
  }
  out.prompt = RelativeL2(run->prompt_logits, whole.prompt_logits);
  out.steps = RelativeL2(run->step_logits, whole.step_logits);
  out.same_tokens = run->tokens == whole.tokens;
  return out;
}

}  // namespace tessera::testing
