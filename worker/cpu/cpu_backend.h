// The CPU backend: fp32 weights on the host and the reference kernels
// (kernels/cpu, OpenBLAS). What CI and a machine without a GPU run, and the
// readable reference of every op.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "model/model_weights.h"
#include "worker/engine.h"

namespace tessera {

// Takes the weights (loaded with WeightStorage::kFloat32).
absl::StatusOr<std::unique_ptr<Engine>> MakeCpuEngine(std::unique_ptr<ModelWeights> weights);
// Borrows them: `weights` must outlive the engine (tests, in-process eval).
// With `stack_projections`, q|k|v and SwiGLU's gate|up are held as one matrix
// each, as the CUDA backend holds them (copies), so that the CPU checks that
// layout of the layer loop too.
absl::StatusOr<std::unique_ptr<Engine>> MakeCpuEngineView(const ModelWeights& weights,
                                                          bool stack_projections = false);

}  // namespace tessera
