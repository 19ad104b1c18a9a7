// The CUDA backend: the model on one GPU (weights uploaded once, in bf16 or
// fp32), one request's K/V and states in device memory, each call on its own
// CUDA stream so requests on one worker run concurrently.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/element_type.h"
#include "model/model_weights.h"
#include "worker/engine.h"

namespace tessera {

struct CudaEngineOptions {
  int device = 0;
  // bf16: matrices, GEMM operands and K/V in bf16 (fp32 accumulation and
  // states); fp32: everything fp32 (no TF32), for checking against references.
  ElementType type = ElementType::kBF16;
};

// Uploads `weights` (best loaded with WeightStorage::kMatricesAsStored) and
// releases the host copy.
absl::StatusOr<std::unique_ptr<Engine>> MakeCudaEngine(std::unique_ptr<ModelWeights> weights,
                                                       const CudaEngineOptions& options);

// CUDA devices visible to this process (0 when the driver or devices are missing).
int CudaDeviceCount();

}  // namespace tessera
