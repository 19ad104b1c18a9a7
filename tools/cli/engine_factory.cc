// The one place that knows which engines this build has (TESSERA_HAVE_CUDA_ENGINE).
#include "tools/cli/engine_factory.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/model_weights.h"
#include "worker/cpu/cpu_backend.h"

#ifdef TESSERA_HAVE_CUDA_ENGINE
#include "worker/cuda/cuda_backend.h"
#endif

namespace tessera {

int VisibleCudaDevices() {
#ifdef TESSERA_HAVE_CUDA_ENGINE
  return CudaDeviceCount();
#else
  return 0;
#endif
}

std::string AvailableBackends() {
#ifdef TESSERA_HAVE_CUDA_ENGINE
  return "cuda, cpu";
#else
  return "cpu";
#endif
}

absl::StatusOr<EngineOptions> ResolveEngineOptions(EngineOptions options) {
  std::string& b = options.backend;
  std::string& p = options.precision;
  if (b != "auto" && b != "cuda" && b != "cpu") {
    return absl::InvalidArgumentError(absl::StrCat("--backend must be auto, cuda or cpu. Given: '", b, "'"));
  }
  if (p != "auto" && p != "bf16" && p != "fp32") {
    return absl::InvalidArgumentError(absl::StrCat("--precision must be auto, bf16 or fp32. Given: '", p, "'"));
  }
  if (b == "auto") b = VisibleCudaDevices() > 0 ? "cuda" : "cpu";
  if (p == "auto") p = b == "cuda" ? "bf16" : "fp32";
  if (b == "cpu" && p == "bf16") {
    return absl::InvalidArgumentError("the cpu backend computes in fp32 only (--precision fp32)");
  }
  return options;
}

absl::StatusOr<std::unique_ptr<Engine>> LoadEngine(const std::string& model_dir, const EngineOptions& requested) {
  ASSIGN_OR_RETURN(const EngineOptions options, ResolveEngineOptions(requested));
  if (options.backend == "cpu") {
    ASSIGN_OR_RETURN(std::unique_ptr<ModelWeights> weights, LoadModelWeights(model_dir, WeightStorage::kFloat32));
    return MakeCpuEngine(std::move(weights));
  }
#ifdef TESSERA_HAVE_CUDA_ENGINE
  if (VisibleCudaDevices() == 0) {
    return absl::FailedPreconditionError("--backend cuda: no CUDA device is visible to this process");
  }
  CudaEngineOptions cuda_options;
  cuda_options.device = options.device;
  cuda_options.type = options.precision == "fp32" ? ElementType::kF32 : ElementType::kBF16;
  ASSIGN_OR_RETURN(std::unique_ptr<ModelWeights> weights,
                   LoadModelWeights(model_dir, WeightStorage::kMatricesAsStored));
  return MakeCudaEngine(std::move(weights), cuda_options);
#else
  return absl::InvalidArgumentError(
      absl::StrCat("--backend cuda: this build has no CUDA engine (built without nvcc); available: ", AvailableBackends()));
#endif
}

}  // namespace tessera
