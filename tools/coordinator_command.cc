// `tessera coordinator --model DIR [--listen HOST:PORT] ...`: serves the
// public API on --listen and worker registration on --internal-listen
// (default: the next port), prints "coordinator internal API on HOST:PORT"
// and then "coordinator listening on HOST:PORT" once both serve (launchers
// wait for the second line and take the rest of each as the address, so
// anything else, such as the metrics address, goes on lines of its own; with
// --http-listen, "coordinator http on HOST:PORT (...)" comes before them).
// Security is never implicit: TLS + bearer tokens on the public API and
// mutual TLS on the internal one (the --tls-* and --auth-tokens-file flags),
// or --insecure, said loudly on stderr. On SIGINT/SIGTERM it ends
// running requests and exits 0. The tokenizer is checked against the model
// before anything is served: a mismatch is a start-up error, not a stream of
// wrong tokens.
#include "tools/coordinator_command.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/nccl_groups.h"
#include "coordinator/served_model.h"
#include "rpc/grpc_security.h"
#include "rpc/grpc_util.h"
#include "rpc/metrics_endpoint.h"
#include "services/coordinator_service.h"
#include "services/http/http_front.h"
#include "tools/cli/cli_flags.h"
#include "tools/cli/shutdown_signal.h"

namespace tessera {
namespace {

constexpr FlagSpec kCoordinatorFlags[] = {
    {"model", true, "Hugging Face model directory (config.json is read: vocab, eos, layers)"},
    {"listen", true, "address of the public API (default 127.0.0.1:50051; port 0: a free port)"},
    {"internal-listen", true, "address of the internal API that workers register with (default: the --listen host "
                              "and port + 1; port 0 there: a free port)"},
    {"insecure", false, "plaintext on both APIs, no authentication (loopback and tests only)"},
    {"tls-cert", true, "PEM certificate of this cluster member, signed by --tls-ca (internal API, mutual TLS; "
                       "also the public API's unless --public-tls-cert)"},
    {"tls-key", true, "PEM private key of --tls-cert"},
    {"tls-ca", true, "PEM certificate of the cluster CA: workers must present a certificate it signed"},
    {"tls-server-name", true, "name the workers' certificates carry (default: the host part of their addresses)"},
    {"public-tls-cert", true, "PEM certificate for the public API (default: --tls-cert)"},
    {"public-tls-key", true, "PEM private key of --public-tls-cert"},
    {"auth-tokens-file", true, "bearer tokens that clients of the public API must send, one per line ('#' comments); "
                               "re-read when it changes"},
    {"health-port", true, "also serve plaintext grpc.health.v1 (nothing else) on this port of the listen host, for "
                          "probes that cannot speak TLS (0: a free port)"},
    {"min-shard-tokens", true, "prompts shorter than this use one worker (default 1024)"},
    {"max-context-tokens", true, "longest prompt + generation served (default: the checkpoint's "
                                 "max_position_embeddings, if any); give the workers the same value"},
    {"max-new-tokens-limit", true, "largest max_new_tokens a request may ask for (default 4096)"},
    {"peer-timeout-ms", true, "how long a worker waits for a peer's block: it must cover the slowest peer's compute "
                              "between two exchanges (default 30000, at most 60000)"},
    {"health-interval-ms", true, "how often every worker is checked (default 500)"},
    {"tokenizer", true, "tokenizer.json for text prompts and text output (default: MODEL_DIR/tokenizer.json if "
                        "present; empty: none)"},
    {"metrics-port", true, "serve Prometheus /metrics on this port of the listen host (0: any free port)"},
    {"shard-layout", true, "how a prompt split over several workers is dealt: auto (zigzag for prompts of at "
                           "least --zigzag-min-tokens that keep no prefix for reuse, of a model with attention), contiguous, or zigzag "
                           "(default auto)"},
    {"zigzag-min-tokens", true, "with --shard-layout auto: shorter prompts are split contiguously (default 16384)"},
    {"peer-transport", true, "how the workers of a multi-shard request exchange: auto (NCCL when every one offers "
                             "it), grpc, nccl (required) (default auto)"},
    {"default-max-new-tokens", true, "what max_new_tokens 0 (and an HTTP request without max_tokens) means at most: "
                                     "up to the served context, capped by this (default 1024)"},
    {"max-queued-requests", true, "requests that may wait for room when the cluster is full, admitted by priority "
                                  "then arrival (default 0: refused at once with RESOURCE_EXHAUSTED / HTTP 429)"},
    {"queue-timeout-ms", true, "how long a request may wait for room (default 60000)"},
    {"http-listen", true, "also serve the OpenAI-compatible HTTP API (/v1/completions, /v1/models, /health) on "
                          "HOST:PORT, with the public API's TLS and bearer tokens (default: off; port 0: a free port)"},
    {"served-model-name", true, "the model id of the HTTP API (default: the --model directory's name)"},
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
  const std::string layout = flags.GetString("shard-layout", "auto");
  if (layout == "auto") {
    options.shard_layout = ShardLayout::kAuto;
  } else if (layout == "contiguous") {
    options.shard_layout = ShardLayout::kContiguous;
  } else if (layout == "zigzag") {
    options.shard_layout = ShardLayout::kZigzag;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--shard-layout must be auto, contiguous or zigzag. Given: ", layout));
  }
  ASSIGN_OR_RETURN(options.zigzag_min_tokens, PositiveFlag(flags, "zigzag-min-tokens", options.zigzag_min_tokens));
  ASSIGN_OR_RETURN(int64_t default_new, PositiveFlag(flags, "default-max-new-tokens", options.default_max_new_tokens));
  options.default_max_new_tokens = static_cast<int32_t>(std::min<int64_t>(default_new, options.max_new_tokens_limit));
  ASSIGN_OR_RETURN(int64_t queued, flags.GetInt("max-queued-requests", options.max_queued_requests));
  if (queued < 0 || queued > (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-queued-requests must be in [0, ", int64_t{1} << 20, "]. Given: ", queued));
  }
  options.max_queued_requests = static_cast<int32_t>(queued);
  ASSIGN_OR_RETURN(int64_t queue_ms, PositiveFlag(flags, "queue-timeout-ms", 60000));
  options.queue_timeout = absl::Milliseconds(queue_ms);
  return options;
}

// Public and internal security from the flags, or --insecure; never a mix.
absl::StatusOr<CoordinatorListeners> ListenersFromFlags(const CliFlags& flags) {
  CoordinatorListeners listeners;
  listeners.public_address = flags.GetString("listen", "127.0.0.1:50051");
  listeners.internal_address = flags.GetString("internal-listen", DefaultInternalAddress(listeners.public_address));
  if (listeners.internal_address == listeners.public_address && !absl::EndsWith(listeners.public_address, ":0")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--internal-listen must differ from --listen. Given: ", listeners.internal_address));
  }
  if (flags.Has("health-port")) {
    ASSIGN_OR_RETURN(int64_t health_port, flags.GetInt("health-port", 0));
    if (health_port < 0 || health_port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("--health-port must be in [0, 65535]. Given: ", health_port));
    }
    listeners.health_port = static_cast<int>(health_port);
  }
  constexpr absl::string_view kSecurityFlags[] = {"tls-cert",        "tls-key",        "tls-ca",          "tls-server-name",
                                                  "public-tls-cert", "public-tls-key", "auth-tokens-file"};
  if (flags.Has("insecure")) {
    for (absl::string_view name : kSecurityFlags) {
      if (flags.Has(name)) return absl::InvalidArgumentError(absl::StrCat("--insecure conflicts with --", name));
    }
    return listeners;  // ServerSecurity::Insecure() on both
  }
  std::vector<std::string> missing;
  for (absl::string_view name : {"tls-cert", "tls-key", "tls-ca", "auth-tokens-file"}) {
    if (flags.GetString(name, "").empty()) missing.push_back(absl::StrCat("--", name));
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the coordinator serves TLS with bearer tokens and mutual TLS to its workers: give --tls-cert, --tls-key, "
        "--tls-ca and --auth-tokens-file (missing: ", absl::StrJoin(missing, ", "),
        "), or --insecure for plaintext without authentication"));
  }
  if (flags.Has("public-tls-cert") != flags.Has("public-tls-key")) {
    return absl::InvalidArgumentError("give --public-tls-cert and --public-tls-key together");
  }
  ASSIGN_OR_RETURN(InternalSecurity cluster,
                   LoadClusterSecurity(flags.GetString("tls-cert", ""), flags.GetString("tls-key", ""),
                                       flags.GetString("tls-ca", ""), flags.GetString("tls-server-name", "")));
  listeners.internal_security = cluster.server;
  listeners.public_security = ServerSecurity();  // TLS, no client certificates
  listeners.public_security.identity = cluster.server.identity;
  if (flags.Has("public-tls-cert")) {
    ASSIGN_OR_RETURN(listeners.public_security.identity.cert_chain_pem,
                     ReadPemFile(flags.GetString("public-tls-cert", ""), "the public API certificate"));
    ASSIGN_OR_RETURN(listeners.public_security.identity.private_key_pem,
                     ReadPemFile(flags.GetString("public-tls-key", ""), "the public API key"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<BearerTokenAuth> tokens,
                   BearerTokenAuth::FromFile(flags.GetString("auth-tokens-file", "")));
  listeners.public_security.auth = std::move(tokens);
  SetInternalSecurity(std::move(cluster));  // the coordinator's channels to its workers
  return listeners;
}

std::string DescribeSecurity(const CliFlags& flags, const CoordinatorListeners& listeners,
                             const CoordinatorServer& server) {
  if (flags.Has("insecure")) {
    return absl::StrCat("INSECURE: no TLS, no authentication: anyone who reaches ", server.address(),
                        " may generate and anyone who reaches ", server.internal_address(),
                        " may register as a worker and read prompts (--insecure)");
  }
  const auto* tokens = dynamic_cast<const BearerTokenAuth*>(listeners.public_security.auth.get());
  const size_t count = tokens != nullptr ? tokens->token_count() : 0;
  return absl::StrCat("public API over TLS", flags.Has("public-tls-cert") ? " (its own certificate)" : "", ", ",
                      count, count == 1 ? " bearer token" : " bearer tokens", " from ",
                      flags.GetString("auth-tokens-file", ""), "; internal API over mutual TLS (cluster CA ",
                      flags.GetString("tls-ca", ""), ")");
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
  ASSIGN_OR_RETURN(const CoordinatorListeners listeners, ListenersFromFlags(flags));
  const std::string& listen = listeners.public_address;

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
                   CoordinatorServer::Start(listeners, std::move(model), options));
  std::cerr << "coordinator: " << DescribeSecurity(flags, listeners, *server) << "\n";
  std::unique_ptr<HttpFront> http;
  if (flags.Has("http-listen")) {
    HttpFrontOptions http_options;
    http_options.listen_address = flags.GetString("http-listen", "");
    http_options.insecure = flags.Has("insecure");
    http_options.identity = listeners.public_security.identity;
    http_options.auth = std::dynamic_pointer_cast<BearerTokenAuth>(listeners.public_security.auth);
    http_options.model_name =
        flags.GetString("served-model-name", std::filesystem::path(model_dir).lexically_normal().filename().string());
    if (http_options.model_name.empty()) http_options.model_name = "model";
    ASSIGN_OR_RETURN(http, HttpFront::Start(http_options, server->coordinator()));
    std::cout << "coordinator http on " << http->address() << " (" << (http_options.insecure ? "http" : "https")
              << ", model \"" << http_options.model_name << "\")" << std::endl;
  }
  std::cout << "coordinator internal API on " << server->internal_address() << std::endl;
  std::cout << "coordinator listening on " << server->address() << std::endl;
  if (metrics_endpoint != nullptr) {
    std::cout << "coordinator metrics on http://" << metrics_endpoint->address() << "/metrics" << std::endl;
  }
  if (server->health_port() > 0) {
    std::cout << "coordinator health on " << WithPort(listen, server->health_port()) << " (plaintext, grpc.health.v1 only)"
              << std::endl;
  }
  std::cerr << "coordinator: serving " << model_type << " from " << model_dir << "; context "
            << (served_context > 0 ? absl::StrCat(served_context, " tokens") : std::string("unbounded")) << "; "
            << (tokenizer_path.empty() ? "no tokenizer (token ids only)" : "tokenizer " + tokenizer_path)
            << "; peer transport " << PeerTransportModeName(options.peer_transport) << "\n";
  const int signal = WaitForShutdownSignal();
  std::cerr << "coordinator: signal " << signal << ", shutting down\n";
  server->Shutdown();  // ends running requests: streams over HTTP end too
  if (http != nullptr) http->Stop();
  return absl::OkStatus();
}

}  // namespace

int RunCoordinatorCommand(int argc, char** argv) {
  BlockShutdownSignals();  // before any thread starts: sigwait then sees them
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kCoordinatorFlags);
  if (flags.ok() && flags->help()) {
    std::cout << FlagsUsage("coordinator",
                            "Serves the public API and plans shards over the workers, who register on the internal API.",
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
