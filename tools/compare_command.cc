// Two clusters in turn, never both at once (on a GPU host each takes the
// devices): start, one Generate(return_logits, ignore_eos), stop. The
// baseline's logits are the reference for the relative L2; decode-step logits
// are compared over the rows both runs computed from the same tokens (the
// common greedy prefix plus the step where they first differ).
#include "tools/compare_command.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "rpc/grpc_util.h"
#include "worker/shard_state.h"
#include "tools/cli/cli_flags.h"
#include "tools/cluster/local_cluster.h"
#include "tools/grpc_greedy_runner.h"
#include "tools/reference_eval.h"
#include "model/model_config.h"

namespace tessera {
namespace {

constexpr FlagSpec kCompareFlags[] = {
    {"model", true, "model directory (required), e.g. from `tessera make-random-model`"},
    {"prompt-length", true, "random prompt tokens (default 4096)"},
    {"steps", true, "greedy decode steps (default 8)"},
    {"seed", true, "seed of the random prompt (default 0)"},
    {"baseline-workers", true, "worker processes of the baseline cluster (default 1)"},
    {"candidate-workers", true, "worker processes of the candidate cluster (default 2)"},
    {"backend", true, "passed to every worker as --backend (default: the worker's)"},
    {"precision", true, "passed to every worker as --precision (default: the worker's)"},
    {"devices", true, "0 (default): no --device flags; N > 0: worker i gets --device i % N"},
    {"device", true, "every worker gets --device N (one GPU for all; not with --devices)"},
    {"tolerance", true, "relative L2 bound on prompt and decode logits (default 1e-2)"},
    {"greedy", true, "require (default): every greedy token identical; report: shown, not judged"},
    {"ready-timeout-s", true, "how long each cluster may take to load and register (default 600)"},
    {"memory-budget-mb", true, "each worker's K/V + state budget (default: enough for the whole prompt)"},
    {"log-file", true, "append the workers' and coordinators' output here (default: stderr)"},
};

struct CompareOptions {
  std::string model_dir;
  int64_t prompt_length = 4096;
  int64_t steps = 8;
  uint64_t seed = 0;
  int64_t baseline_workers = 1;
  int64_t candidate_workers = 2;
  std::string backend;    // empty: not passed
  std::string precision;  // empty: not passed
  int64_t devices = 0;
  int64_t device = -1;  // >= 0: every worker on this GPU (--device)
  double tolerance = 1e-2;
  bool require_identical_greedy = true;
  int64_t ready_timeout_s = 600;
  int64_t memory_budget_mb = 0;  // 0: computed from the model and the prompt
  std::string log_file;
};

absl::StatusOr<int64_t> PositiveInt(const CliFlags& flags, absl::string_view name, int64_t fallback, int64_t min) {
  ASSIGN_OR_RETURN(int64_t v, flags.GetInt(name, fallback));
  if (v < min) return absl::InvalidArgumentError(absl::StrCat("--", name, " must be >= ", min, ". Given: ", v));
  return v;
}

absl::StatusOr<CompareOptions> OptionsFromFlags(const CliFlags& flags) {
  CompareOptions o;
  ASSIGN_OR_RETURN(o.model_dir, flags.RequireString("model"));
  ASSIGN_OR_RETURN(o.prompt_length, PositiveInt(flags, "prompt-length", o.prompt_length, 1));
  ASSIGN_OR_RETURN(o.steps, PositiveInt(flags, "steps", o.steps, 1));
  ASSIGN_OR_RETURN(int64_t seed, PositiveInt(flags, "seed", 0, 0));
  o.seed = static_cast<uint64_t>(seed);
  ASSIGN_OR_RETURN(o.baseline_workers, PositiveInt(flags, "baseline-workers", o.baseline_workers, 1));
  ASSIGN_OR_RETURN(o.candidate_workers, PositiveInt(flags, "candidate-workers", o.candidate_workers, 1));
  o.backend = flags.GetString("backend", "");
  o.precision = flags.GetString("precision", "");
  ASSIGN_OR_RETURN(o.devices, PositiveInt(flags, "devices", 0, 0));
  if (flags.Has("device")) {
    if (flags.Has("devices")) return absl::InvalidArgumentError("give --device or --devices, not both");
    ASSIGN_OR_RETURN(o.device, PositiveInt(flags, "device", 0, 0));
  }
  ASSIGN_OR_RETURN(o.tolerance, flags.GetDouble("tolerance", o.tolerance));
  if (!(o.tolerance >= 0)) return absl::InvalidArgumentError("--tolerance must be >= 0");
  const std::string greedy = flags.GetString("greedy", "require");
  if (greedy != "require" && greedy != "report") {
    return absl::InvalidArgumentError(absl::StrCat("--greedy must be require or report. Given: '", greedy, "'"));
  }
  o.require_identical_greedy = greedy == "require";
  ASSIGN_OR_RETURN(o.ready_timeout_s, PositiveInt(flags, "ready-timeout-s", o.ready_timeout_s, 1));
  ASSIGN_OR_RETURN(o.memory_budget_mb, PositiveInt(flags, "memory-budget-mb", 0, 0));
  if (flags.Has("memory-budget-mb") && o.memory_budget_mb == 0) {
    return absl::InvalidArgumentError("--memory-budget-mb must be > 0. Given: 0");
  }
  o.log_file = flags.GetString("log-file", "");
  for (int64_t workers : {o.baseline_workers, o.candidate_workers}) {
    if (workers > 1024) {
      return absl::InvalidArgumentError(absl::StrCat("worker counts must be <= 1024. Given: ", workers));
    }
  }
  return o;
}

// The whole request on one worker (the baseline may have only one): K/V for
// every token plus the recurrent state, with a quarter and 64 MiB to spare.
int64_t DefaultMemoryBudgetMb(const ModelConfig& config, int64_t tokens) {
  const int64_t bytes = tokens * KvBytesPerToken(config, sizeof(float)) + StateBytesPerRequest(config);
  return std::max<int64_t>(1024, (bytes + bytes / 4 + (int64_t{1} << 20) - 1) / (int64_t{1} << 20) + 64);
}

// What one Generate returns, checked for size: a bad count is a runtime error.
absl::StatusOr<GreedyRun> RunCluster(const CompareOptions& o, absl::string_view label, int64_t workers,
                                     const std::vector<std::string>& worker_flags, const std::vector<int32_t>& prompt,
                                     int64_t vocab) {
  LocalClusterOptions options;
  ASSIGN_OR_RETURN(options.binary, FindTesseraBinaryNextToSelf());
  options.model_dir = o.model_dir;
  options.workers = static_cast<int>(workers);
  options.coordinator_flags = {"--min-shard-tokens", "1"};  // every prompt spans all workers
  options.worker_flags = worker_flags;
  for (int64_t d = 0; d < o.devices; ++d) options.worker_devices.push_back(static_cast<int>(d));
  if (o.device >= 0) options.worker_devices = {static_cast<int>(o.device)};
  options.ready_timeout = std::chrono::seconds(o.ready_timeout_s);
  options.log_path = o.log_file;

  const auto start = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  if (!cluster.ok()) {
    return absl::Status(cluster.status().code(), absl::StrCat(label, " cluster: ", cluster.status().message()));
  }
  const double ready_s = since(start);
  const auto generate_start = std::chrono::steady_clock::now();
  absl::StatusOr<GreedyRun> run =
      MakeGrpcGreedyRunner((*cluster)->address(), (*cluster)->client_security())(prompt, static_cast<int>(o.steps));
  const double generate_s = since(generate_start);
  (*cluster)->Stop();
  if (!run.ok()) return absl::Status(run.status().code(), absl::StrCat(label, " run: ", run.status().message()));
  const size_t prompt_values = prompt.size() * static_cast<size_t>(vocab);  // (prompt_length, vocab)
  const size_t step_values = static_cast<size_t>(o.steps * vocab);          // (steps, vocab)
  if (run->prompt_logits.size() != prompt_values || run->tokens.size() != static_cast<size_t>(o.steps) ||
      run->step_logits.size() != step_values) {
    return absl::InternalError(absl::StrCat(label, " returned ", run->prompt_logits.size(), " prompt logits, ",
                                            run->tokens.size(), " tokens, ", run->step_logits.size(),
                                            " step logits; expected ", prompt_values, ", ", o.steps, ", ",
                                            step_values));
  }
  std::cout << absl::StrFormat("run %s: workers=%d ready_s=%.1f generate_s=%.2f total_s=%.1f", label, workers,
                               ready_s, generate_s, since(start))
            << std::endl;
  return run;
}

absl::StatusOr<bool> Compare(const CompareOptions& o) {
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(o.model_dir));
  const int64_t vocab = config.vocab_size;
  const int64_t tokens = o.prompt_length + o.steps;
  // Generate returns every prompt row and every step row in one message (1 MiB spare for the rest).
  const int64_t logits_bytes = tokens * vocab * static_cast<int64_t>(sizeof(float));
  const int64_t logits_limit = kMaxGrpcMessageBytes - (int64_t{1} << 20);
  if (logits_bytes > logits_limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the logits, (prompt-length + steps) x vocab x 4 bytes, must fit in one gRPC message (limit ",
        kMaxGrpcMessageBytes, " bytes, 1 MiB kept spare): <= ", logits_limit, ". Given: ", tokens, " x ", vocab,
        " x 4 = ", logits_bytes, "; use a shorter prompt or a model with a smaller vocab (`tessera "
        "make-random-model --vocab N`)"));
  }
  if (config.max_position_embeddings > 0 && tokens > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("--prompt-length + --steps must be <= ",
                                                   config.max_position_embeddings,
                                                   " (the model's max_position_embeddings). Given: ", tokens));
  }

  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt_length));  // (prompt_length,)
  for (int32_t& t : prompt) t = token(rng);

  const int64_t budget_mb = o.memory_budget_mb > 0 ? o.memory_budget_mb : DefaultMemoryBudgetMb(config, tokens);
  std::vector<std::string> worker_flags = {"--memory-budget-mb", absl::StrCat(budget_mb)};
  if (!o.backend.empty()) worker_flags.insert(worker_flags.end(), {"--backend", o.backend});
  if (!o.precision.empty()) worker_flags.insert(worker_flags.end(), {"--precision", o.precision});
  std::cout << absl::StrFormat(
                   "compare %s (%s, vocab %d, %d layers): prompt %d tokens (seed %d), %d steps, backend %s, "
                   "precision %s, devices %s, budget %d MiB per worker",
                   o.model_dir, config.model_type, vocab, config.num_layers, o.prompt_length, o.seed, o.steps,
                   o.backend.empty() ? "(worker default)" : o.backend,
                   o.precision.empty() ? "(worker default)" : o.precision,
                   o.device >= 0 ? absl::StrCat("all on ", o.device) : absl::StrCat(o.devices), budget_mb)
            << std::endl;

  ASSIGN_OR_RETURN(GreedyRun baseline, RunCluster(o, "baseline", o.baseline_workers, worker_flags, prompt, vocab));
  ASSIGN_OR_RETURN(GreedyRun candidate, RunCluster(o, "candidate", o.candidate_workers, worker_flags, prompt, vocab));

  const LengthReport r = CompareGreedyRuns(candidate, baseline, o.tolerance, o.require_identical_greedy);
  std::cout << absl::StrFormat(
                   "%s: prompt_rel_l2=%.3e prompt_max_abs=%.3e decode_rel_l2=%.3e decode_max_abs=%.3e "
                   "greedy=%d/%d%s tolerance=%.1e (candidate %d workers vs baseline %d)",
                   r.passed ? "PASS" : "FAIL", r.prompt_rel_l2, r.prompt_max_abs, r.decode_rel_l2, r.decode_max_abs,
                   r.greedy_matched, r.greedy_total, o.require_identical_greedy ? "" : " (reported)", o.tolerance,
                   o.candidate_workers, o.baseline_workers)
            << std::endl;
  return r.passed;
}

}  // namespace

int RunCompareCommand(int argc, char** argv) {
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kCompareFlags);
  if (flags.ok() && flags->help()) {
    std::cout << FlagsUsage("compare",
                            "Runs one seeded random prompt through a baseline and a candidate local cluster and\n"
                            "compares their logits and greedy tokens (exit 0 same, 1 different, 2 error).",
                            kCompareFlags);
    return 0;
  }
  absl::StatusOr<CompareOptions> options =
      flags.ok() ? OptionsFromFlags(*flags) : absl::StatusOr<CompareOptions>(flags.status());
  absl::StatusOr<bool> passed = options.ok() ? Compare(*options) : absl::StatusOr<bool>(options.status());
  if (!passed.ok()) {
    std::cerr << "tessera compare: " << passed.status().message() << "\n";
    return 2;
  }
  return *passed ? 0 : 1;
}

}  // namespace tessera
