// `tessera eval --model DIR [--reference FILE]`: prompt logits, 24 greedy
// decode steps through the cache, error norms per length; exit 0 only if every
// length is within tolerance and every greedy token is identical.
#include "tools/eval_command.h"

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tools/cli_flags.h"
#include "tools/cluster/local_cluster.h"
#include "tools/cpu_greedy_runner.h"
#include "tools/grpc_greedy_runner.h"
#include "tools/reference_eval.h"
#include "worker/model_weights.h"

namespace tessera {
namespace {

constexpr FlagSpec kEvalFlags[] = {
    {"model", true, "Hugging Face model directory (config.json + *.safetensors)"},
    {"reference", true, "reference.safetensors (default: MODEL/reference.safetensors)"},
    {"tolerance", true, "relative L2 bound for prompt and decode logits (default 1e-4 on CPU fp32)"},
    {"backend", true, "cpu (the only backend in this build)"},
    {"workers", true, "0 (default): in this process; N >= 1: through a local cluster of N worker processes"},
};


absl::StatusOr<bool> Evaluate(const CliFlags& flags) {
  ASSIGN_OR_RETURN(std::string model_dir, flags.RequireString("model"));
  const std::string reference = flags.GetString("reference", model_dir + "/reference.safetensors");
  ASSIGN_OR_RETURN(double tolerance, flags.GetDouble("tolerance", 1e-4));
  const std::string backend = flags.GetString("backend", "cpu");
  if (backend != "cpu") return absl::InvalidArgumentError(absl::StrCat("--backend '", backend, "' is not available (cpu)"));

  ASSIGN_OR_RETURN(int64_t workers, flags.GetInt("workers", 0));
  if (workers < 0) return absl::InvalidArgumentError(absl::StrCat("--workers must be >= 0. Given: ", workers));

  ASSIGN_OR_RETURN(std::unique_ptr<ModelWeights> weights, LoadModelWeights(model_dir));
  std::cout << "model " << weights->config.model_type << " from " << model_dir << ", reference " << reference
            << ", backend cpu (fp32), " << (workers == 0 ? std::string("in process") : absl::StrCat(workers, " worker processes"))
            << "\n";
  std::unique_ptr<LocalCluster> cluster;
  GreedyRunner runner = MakeCpuGreedyRunner(*weights);
  if (workers > 0) {
    LocalClusterOptions options;
    ASSIGN_OR_RETURN(options.binary, FindTesseraBinaryNextToSelf());
    options.model_dir = model_dir;
    options.workers = static_cast<int>(workers);
    options.coordinator_flags = {"--min-shard-tokens", "1"};  // every prompt spans all workers
    ASSIGN_OR_RETURN(cluster, LocalCluster::Start(options));
    runner = MakeGrpcGreedyRunner(cluster->address());
  }
  ASSIGN_OR_RETURN(std::vector<LengthReport> reports, EvaluateAgainstReference(reference, runner, tolerance));
  std::cout << FormatReports(reports, tolerance);
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
