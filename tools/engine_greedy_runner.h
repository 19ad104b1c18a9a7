// An Engine as a GreedyRunner (reference_eval.h): prefill once, then
// one-token decode steps through the cached path, as a server runs them.
#pragma once

#include "tools/reference_eval.h"
#include "worker/engine.h"
#include "model/model_weights.h"

namespace tessera {

// `engine` must outlive the runner.
GreedyRunner MakeEngineGreedyRunner(Engine& engine);
// The CPU engine over `weights` (which must outlive the runner).
GreedyRunner MakeCpuGreedyRunner(const ModelWeights& weights);

}  // namespace tessera
