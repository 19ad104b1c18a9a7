// `tessera eval --model DIR [--reference FILE]`: prompt logits, 24 greedy
// decode steps through the cache, error norms per length; exit 0 only if every
// length is within tolerance and every greedy token is identical.
#include "tools/eval_command.h"

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tools/cli/cli_flags.h"
#include "tools/cluster/local_cluster.h"
#include "tools/engine_greedy_runner.h"
#include "tools/grpc_greedy_runner.h"
#include "tools/reference_eval.h"
#include "tools/cli/engine_factory.h"

namespace tessera {
namespace {

constexpr FlagSpec kEvalFlags[] = {
    {"model", true, "Hugging Face model directory (config.json + *.safetensors)"},
    {"reference", true, "reference.safetensors (default: MODEL/reference.safetensors)"},
    {"tolerance", true, "relative L2 bound for prompt and decode logits (default: 1e-4 cpu, 1e-3 cuda fp32, 3e-2 bf16)"},
    {"backend", true, "auto (default: cuda when a GPU is visible, else cpu), cuda or cpu"},
    {"precision", true, "auto (default: bf16 on cuda, fp32 on cpu), bf16 or fp32"},
    {"device", true, "CUDA device of the in-process run, or of every worker (default: 0 in process; workers one GPU "
                     "each, round robin)"},
    {"memory-budget-mb", true, "each worker's K/V + state budget in MiB (with --workers N; passed to the workers)"},
    {"greedy", true, "require (default for fp32): every greedy token identical; report (default for bf16)"},
    {"workers", true, "0 (default): in this process; N >= 1: through a local cluster of N worker processes"},
    {"shard-layout", true, "with --workers N: how prompts are split, contiguous (default) or zigzag"},
};

// The default bound per backend and precision: fp32 on the CPU matches
// transformers to rounding; cuBLAS/GPU summation orders differ more; bf16
// operands bound what any bf16 engine can reach.
double DefaultTolerance(const std::string& backend, const std::string& precision) {
  if (precision == "bf16") return 3e-2;
  return backend == "cuda" ? 1e-3 : 1e-4;
}


absl::StatusOr<bool> Evaluate(const CliFlags& flags) {
  ASSIGN_OR_RETURN(std::string model_dir, flags.RequireString("model"));
  const std::string reference = flags.GetString("reference", model_dir + "/reference.safetensors");
  EngineOptions requested;
  requested.backend = flags.GetString("backend", "auto");
  requested.precision = flags.GetString("precision", "auto");
  ASSIGN_OR_RETURN(int64_t device, flags.GetInt("device", 0));
  requested.device = static_cast<int>(device);
  ASSIGN_OR_RETURN(const EngineOptions engine_options, ResolveEngineOptions(requested));
  if (flags.Has("device")) {
    if (engine_options.backend != "cuda") {
      return absl::InvalidArgumentError(absl::StrCat("--device ", device, " applies to CUDA; this eval runs on the ",
                                                     engine_options.backend, " (--backend ", requested.backend, ")"));
    }
    const int visible = VisibleCudaDevices();
    if (device < 0 || device >= visible) {
      return absl::InvalidArgumentError(
          absl::StrCat("--device must be in [0, ", visible, ") (the visible CUDA devices). Given: ", device));
    }
  }
  ASSIGN_OR_RETURN(double tolerance,
                   flags.GetDouble("tolerance", DefaultTolerance(engine_options.backend, engine_options.precision)));
  const std::string greedy = flags.GetString("greedy", engine_options.precision == "bf16" ? "report" : "require");
  if (greedy != "require" && greedy != "report") {
    return absl::InvalidArgumentError(absl::StrCat("--greedy must be require or report. Given: '", greedy, "'"));
  }
  ASSIGN_OR_RETURN(int64_t workers, flags.GetInt("workers", 0));
  if (workers < 0) return absl::InvalidArgumentError(absl::StrCat("--workers must be >= 0. Given: ", workers));
  ASSIGN_OR_RETURN(int64_t budget_mb, flags.GetInt("memory-budget-mb", 0));
  if (flags.Has("memory-budget-mb")) {
    if (workers == 0) {
      return absl::InvalidArgumentError("--memory-budget-mb applies to worker processes: give --workers N too");
    }
    if (budget_mb <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--memory-budget-mb must be > 0. Given: ", budget_mb));
    }
  }

  std::unique_ptr<Engine> engine;
  std::unique_ptr<LocalCluster> cluster;
  GreedyRunner runner;
  if (workers == 0) {
    ASSIGN_OR_RETURN(engine, LoadEngine(model_dir, engine_options));
    std::cout << "model " << engine->config().model_type << " from " << model_dir << ", reference " << reference
              << ", " << engine->Describe() << ", in process\n";
    runner = MakeEngineGreedyRunner(*engine);
  } else {
    LocalClusterOptions options;
    ASSIGN_OR_RETURN(options.binary, FindTesseraBinaryNextToSelf());
    options.model_dir = model_dir;
    options.workers = static_cast<int>(workers);
    // Every prompt spans all workers, dealt as asked.
    options.coordinator_flags = {"--min-shard-tokens", "1", "--shard-layout",
                                 flags.GetString("shard-layout", "contiguous")};
    options.worker_flags = {"--backend", engine_options.backend, "--precision", engine_options.precision};
    if (flags.Has("memory-budget-mb")) {
      options.worker_flags.insert(options.worker_flags.end(), {"--memory-budget-mb", absl::StrCat(budget_mb)});
    }
    if (flags.Has("device")) {
      options.worker_devices = {engine_options.device};  // every worker on this GPU
    } else if (engine_options.backend == "cuda") {
      const int gpus = VisibleCudaDevices();
      if (gpus == 0) return absl::FailedPreconditionError("--backend cuda: no CUDA device is visible");
      for (int i = 0; i < gpus; ++i) options.worker_devices.push_back(i);
    }
    std::cout << "model from " << model_dir << ", reference " << reference << ", backend " << engine_options.backend
              << " (" << engine_options.precision << "), " << workers << " worker processes"
              << (options.worker_devices.empty() ? std::string()
                                                 : absl::StrCat(" over ", options.worker_devices.size(), " GPUs"))
              << "\n";
    ASSIGN_OR_RETURN(cluster, LocalCluster::Start(options));
    runner = MakeGrpcGreedyRunner(cluster->address(), cluster->client_security());
  }
  ASSIGN_OR_RETURN(std::vector<LengthReport> reports,
                   EvaluateAgainstReference(reference, runner, tolerance, greedy == "require"));
  std::cout << FormatReports(reports, tolerance, greedy == "require");
  bool all = true;
  for (const LengthReport& r : reports) all = all && r.passed;
  return all;
}

}  // namespace

int RunEvalCommand(int argc, char** argv) {
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kEvalFlags);
  if (flags.ok() && flags->help()) {
    std::cout << FlagsUsage("eval", "Compares logits and greedy tokens with a Hugging Face reference.", kEvalFlags);
    return 0;
  }
  absl::StatusOr<bool> passed = flags.ok() ? Evaluate(*flags) : absl::StatusOr<bool>(flags.status());
  if (!passed.ok()) {
    std::cerr << "tessera eval: " << passed.status().message() << "\n";
    return 2;
  }
  return *passed ? 0 : 1;
}

}  // namespace tessera
