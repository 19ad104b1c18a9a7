// Picks and builds the engine a worker runs: `--backend auto|cuda|cpu` and
// `--precision auto|bf16|fp32` (auto: CUDA in bf16 when this build has the
// CUDA engine and a GPU is visible, else the CPU in fp32).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/engine.h"

namespace tessera {

struct EngineOptions {
  std::string backend = "auto";    // auto | cuda | cpu
  std::string precision = "auto";  // auto | bf16 | fp32 (cpu: fp32 only)
  int device = 0;                  // CUDA device index
};

// `options` with "auto" decided for this process: backend cuda when this
// build has the CUDA engine and a GPU is visible, else cpu; precision bf16 on
// cuda, fp32 on cpu. INVALID_ARGUMENT for a value that is not a choice, or
// bf16 on the cpu.
absl::StatusOr<EngineOptions> ResolveEngineOptions(EngineOptions options);

// Loads the model in `model_dir` onto the chosen backend. INVALID_ARGUMENT
// for an unknown or impossible choice (cuda in a build without it, bf16 on
// the CPU), FAILED_PRECONDITION when cuda was asked for and no GPU is visible.
absl::StatusOr<std::unique_ptr<Engine>> LoadEngine(const std::string& model_dir, const EngineOptions& options);

// CUDA devices this process sees; 0 in a build without the CUDA engine.
int VisibleCudaDevices();

// The backends this build can run, e.g. "cuda, cpu".
std::string AvailableBackends();

}  // namespace tessera
