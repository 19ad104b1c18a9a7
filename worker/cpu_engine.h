// The CPU engine: fp32 weights on the host and the reference forward pass
// (cpu_forward.h) with OpenBLAS. What CI and a machine without a GPU run.
#pragma once

#include <memory>

#include "worker/engine.h"
#include "model/model_weights.h"

namespace tessera {

// Takes the weights (loaded with WeightStorage::kFloat32).
absl::StatusOr<std::unique_ptr<Engine>> MakeCpuEngine(std::unique_ptr<ModelWeights> weights);
// Borrows them: `weights` must outlive the engine (tests, in-process eval).
std::unique_ptr<Engine> MakeCpuEngineView(const ModelWeights& weights);

}  // namespace tessera
