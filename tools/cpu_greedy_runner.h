// The single-process CPU engine as a GreedyRunner: prefill the prompt with
// logits at every position, then decode greedily one token at a time through
// the KV cache and the carried conv/SSM states.
#pragma once

#include "tools/reference_eval.h"
#include "worker/model_weights.h"

namespace tessera {

// `weights` must outlive the runner.
GreedyRunner MakeCpuGreedyRunner(const ModelWeights& weights);

}  // namespace tessera
