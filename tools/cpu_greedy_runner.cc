// Prefill once, then one-token decode steps: the cached path a server runs.
#include "tools/cpu_greedy_runner.h"

#include "common/status_macros.h"
#include "worker/cpu_forward.h"
#include "worker/sampler.h"
#include "worker/sequence_state.h"

namespace tessera {

GreedyRunner MakeCpuGreedyRunner(const ModelWeights& weights) {
  return [&weights](absl::Span<const int32_t> prompt, int steps) -> absl::StatusOr<GreedyRun> {
    const int64_t vocab = weights.config.vocab_size;
    SequenceState state = SequenceState::ForModel(weights.config);
    GreedyRun run;
    ASSIGN_OR_RETURN(run.prompt_logits, ForwardCpu(weights, state, prompt, LogitsRows::kAll));
    std::vector<float> last(run.prompt_logits.end() - vocab, run.prompt_logits.end());  // (vocab)
    for (int step = 0; step < steps; ++step) {
      const int32_t token = GreedyToken(last);
      run.tokens.push_back(token);
      run.step_logits.insert(run.step_logits.end(), last.begin(), last.end());
      if (step + 1 < steps) {
        const int32_t next[1] = {token};
        ASSIGN_OR_RETURN(last, ForwardCpu(weights, state, next, LogitsRows::kLast));
      }
    }
    return run;
  };
}

}  // namespace tessera
