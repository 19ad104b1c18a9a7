// Prefill once, then one-token decode steps: the cached path a server runs.
#include "tools/engine_greedy_runner.h"

#include <memory>

#include "common/status_macros.h"
#include "worker/cpu/cpu_backend.h"
#include "worker/sampler.h"

namespace tessera {

GreedyRunner MakeEngineGreedyRunner(Engine& engine) {
  return [&engine](absl::Span<const int32_t> prompt, int steps) -> absl::StatusOr<GreedyRun> {
    const int64_t vocab = engine.config().vocab_size;
    ASSIGN_OR_RETURN(std::unique_ptr<ShardState> state,
                     engine.NewState(0, static_cast<int64_t>(prompt.size()) + steps));
    GreedyRun run;
    ASSIGN_OR_RETURN(run.prompt_logits, engine.Forward(*state, prompt, LogitsRows::kAll));
    std::vector<float> last(run.prompt_logits.end() - vocab, run.prompt_logits.end());  // (vocab)
    for (int step = 0; step < steps; ++step) {
      const int32_t token = GreedyToken(last);
      run.tokens.push_back(token);
      run.step_logits.insert(run.step_logits.end(), last.begin(), last.end());
      if (step + 1 < steps) {
        const int32_t next[1] = {token};
        ASSIGN_OR_RETURN(last, engine.Forward(*state, next, LogitsRows::kLast));
      }
    }
    return run;
  };
}

GreedyRunner MakeCpuGreedyRunner(const ModelWeights& weights) {
  absl::StatusOr<std::unique_ptr<Engine>> made = MakeCpuEngineView(weights);
  if (!made.ok()) {
    return [status = made.status()](absl::Span<const int32_t>, int) -> absl::StatusOr<GreedyRun> { return status; };
  }
  std::shared_ptr<Engine> engine = *std::move(made);
  GreedyRunner run = MakeEngineGreedyRunner(*engine);
  return [engine, run](absl::Span<const int32_t> prompt, int steps) { return run(prompt, steps); };
}

}  // namespace tessera
