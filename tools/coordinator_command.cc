// `tessera coordinator --model DIR [--listen HOST:PORT] ...`: serves the
// public API and worker registration on one port, prints
// "coordinator listening on HOST:PORT" once serving (launchers wait for that
// line and take the rest of it as the address, so anything else, such as the
// metrics address, goes on lines of its own), and on SIGINT/SIGTERM ends
// running requests and exits 0. The tokenizer is checked against the model
// before anything is served: a mismatch is a start-up error, not a stream of
// wrong tokens.
#include "tools/coordinator_command.h"

#include <algorithm>
#include <cstdint>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/nccl_groups.h"
#include "coordinator/served_model.h"
#include "rpc/metrics_endpoint.h"
#include "services/coordinator_service.h"
#include "tools/cli/cli_flags.h"
#include "tools/cli/shutdown_signal.h"

namespace tessera {
namespace {

constexpr FlagSpec kCoordinatorFlags[] = {
    {"model", true, "Hugging Face model directory (config.json is read: vocab, eos, layers)"},
    {"listen", true, "address to serve on (default 127.0.0.1:50051; port 0: a free port)"},
    {"min-shard-tokens", true, "prompts shorter than this use one worker (default 1024)"},
    {"max-context-tokens", true, "longest prompt + generation served (default: the checkpoint's "
                                 "max_position_embeddings, if any); give the workers the same value"},
    {"max-new-tokens-limit", true, "largest max_new_tokens a request may ask for (default 4096)"},
    {"peer-timeout-ms", true, "how long a worker waits for a peer's block (default 10000)"},
    {"health-interval-ms", true, "how often every worker is checked (default 500)"},
    {"tokenizer", true, "tokenizer.json for text prompts and text output (default: MODEL_DIR/tokenizer.json if "
                        "present; empty: none)"},
    {"metrics-port", true, "serve Prometheus /metrics on this port of the listen host (0: any free port)"},
    {"peer-transport", true, "how the workers of a multi-shard request exchange: auto (NCCL when every one offers "
                             "it), grpc, nccl (required) (default auto)"},
};

absl::StatusOr<int64_t> PositiveFlag(const CliFlags& flags, absl::string_view name, int64_t fallback) {
  ASSIGN_OR_RETURN(int64_t value, flags.GetInt(name, fallback));
  if (value < 1) return absl::InvalidArgumentError(absl::StrCat("--", name, " must be >= 1. Given: ", value));
  return value;
}

absl::StatusOr<CoordinatorOptions> OptionsFromFlags(const CliFlags& flags) {
  CoordinatorOptions options;
  ASSIGN_OR_RETURN(options.min_shard_tokens, PositiveFlag(flags, "min-shard-tokens", options.min_shard_tokens));
  ASSIGN_OR_RETURN(int64_t limit, PositiveFlag(flags, "max-new-tokens-limit", options.max_new_tokens_limit));
  if (limit > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-new-tokens-limit must be <= ", int64_t{1} << 30, ". Given: ", limit));
  }
  options.max_new_tokens_limit = static_cast<int32_t>(limit);
  ASSIGN_OR_RETURN(int64_t peer_timeout_ms, PositiveFlag(flags, "peer-timeout-ms", options.peer_timeout_ms));
  options.peer_timeout_ms = static_cast<int32_t>(std::min<int64_t>(peer_timeout_ms, INT32_MAX));
  ASSIGN_OR_RETURN(int64_t health_ms, PositiveFlag(flags, "health-interval-ms", 500));
  options.health_interval = absl::Milliseconds(health_ms);
  ASSIGN_OR_RETURN(options.peer_transport, ParsePeerTransportMode(flags.GetString("peer-transport", "auto")));
  return options;
}

absl::Status Serve(const CliFlags& flags) {
  ASSIGN_OR_RETURN(std::string model_dir, flags.RequireString("model"));
  ASSIGN_OR_RETURN(int64_t max_context_tokens, flags.GetInt("max-context-tokens", 0));
  std::string context_warning;
  ASSIGN_OR_RETURN(ServedModel model, LoadServedModel(model_dir, max_context_tokens, &context_warning));
  if (!context_warning.empty()) std::cerr << "coordinator: warning: " << context_warning << "\n";
  const std::string tokenizer_path = flags.GetString("tokenizer", DefaultTokenizerPath(model_dir));
  if (!tokenizer_path.empty()) RETURN_IF_ERROR(AttachTokenizer(tokenizer_path, model));
  ASSIGN_OR_RETURN(CoordinatorOptions options, OptionsFromFlags(flags));
  const std::string listen = flags.GetString("listen", "127.0.0.1:50051");

  auto registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<CoordinatorMetrics> metrics;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint;
  if (flags.Has("metrics-port")) {
    ASSIGN_OR_RETURN(int64_t metrics_port, flags.GetInt("metrics-port", 0));
    if (metrics_port < 0 || metrics_port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("--metrics-port must be in [0, 65535]. Given: ", metrics_port));
    }
    AddBuildInfo(*registry, "coordinator", "cpu");
    metrics = std::make_unique<CoordinatorMetrics>(*registry);
    ASSIGN_OR_RETURN(metrics_endpoint, MetricsEndpoint::Start(HostOf(listen), static_cast<int>(metrics_port), registry));
    options.metrics = metrics.get();
    options.metrics_address = metrics_endpoint->address();
  }

  const std::string model_type = model.model_type;
  const int64_t served_context = model.max_context_tokens;
  ASSIGN_OR_RETURN(std::unique_ptr<CoordinatorServer> server,
                   CoordinatorServer::Start(listen, std::move(model), options));
  std::cout << "coordinator listening on " << server->address() << std::endl;
  if (metrics_endpoint != nullptr) {
    std::cout << "coordinator metrics on http://" << metrics_endpoint->address() << "/metrics" << std::endl;
  }
  std::cerr << "coordinator: serving " << model_type << " from " << model_dir << "; context "
            << (served_context > 0 ? absl::StrCat(served_context, " tokens") : std::string("unbounded")) << "; "
            << (tokenizer_path.empty() ? "no tokenizer (token ids only)" : "tokenizer " + tokenizer_path)
            << "; peer transport " << PeerTransportModeName(options.peer_transport) << "\n";
  const int signal = WaitForShutdownSignal();
  std::cerr << "coordinator: signal " << signal << ", shutting down\n";
  server->Shutdown();
  return absl::OkStatus();
}

}  // namespace

int RunCoordinatorCommand(int argc, char** argv) {
  BlockShutdownSignals();  // before any thread starts: sigwait then sees them
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kCoordinatorFlags);
  if (flags.ok() && flags->help()) {
    std::cout << FlagsUsage("coordinator", "Serves the public API and plans shards over the workers.",
                            kCoordinatorFlags);
    return 0;
  }
  const absl::Status status = flags.ok() ? Serve(*flags) : flags.status();
  if (!status.ok()) {
    std::cerr << "tessera coordinator: " << status << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

}  // namespace tessera
