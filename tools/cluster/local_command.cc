// SIGINT, SIGTERM and SIGHUP are blocked before any thread starts (gRPC's threads
// inherit the mask), so they stay pending for this thread alone: polled while
// the cluster starts (a Ctrl-C during a long model load stops at once), then
// taken with sigtimedwait, whose one-second timeout doubles as the watch over
// the children. Children get an empty mask (child_process.h).
//
// On loopback the cluster is plaintext by default, said on the first lines;
// --tls makes a throwaway CA, certificate and token (local_tls.h) and runs
// the cluster as a deployment would: TLS and tokens on the public API, mutual
// TLS inside.
#include "tools/cluster/local_command.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rpc/grpc_security.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tools/cli/cli_flags.h"
#include "tools/cluster/local_cluster.h"
#include "tools/cluster/local_tls.h"
#include "tools/cli/engine_factory.h"

namespace tessera {
namespace {

constexpr FlagSpec kLocalFlags[] = {
    {"workers", true, "worker processes to start (required, >= 1)"},
    {"model", true, "model directory (required)"},
    {"port", true, "coordinator port on 127.0.0.1 (default 50051; 0: any free port)"},
    {"memory-budget-mb", true, "each worker's K/V + state budget in MiB (passed to the workers)"},
    {"min-shard-tokens", true, "fewest prompt tokens per shard (passed to the coordinator)"},
    {"shard-layout", true, "auto, contiguous or zigzag (passed to the coordinator; default auto)"},
    {"zigzag-min-tokens", true, "shortest prompt --shard-layout auto deals zigzag (passed to the coordinator)"},
    {"max-context-tokens", true, "longest prompt + generation served (passed to the coordinator and the workers)"},
    {"max-new-tokens-limit", true, "largest max_new_tokens a request may ask for (default 4096; passed to both roles)"},
    {"prefill-chunk-tokens", true, "longest piece a worker prefills a one-shard request in (default 0: sized from "
                                   "free memory; passed to the workers)"},
    {"warmup-tokens", true, "prompt tokens each worker prefills before serving (passed to the workers; default 4096 "
                            "on cuda, 0 on cpu)"},
    {"prefix-block-tokens", true, "prefix reuse block (default 4096 rounded up to the SSD chunk; 0: off; passed to "
                                  "the workers)"},
    {"max-pass-tokens", true, "longest prefill pass of each worker (default 0: what its memory holds; a longer "
                              "shard runs in rounds; passed to the workers)"},
    {"tokenizer", true, "tokenizer.json for text (passed to the coordinator; default: the model's, if any)"},
    {"log-file", true, "append the children's output to this file instead of stderr"},
    {"ready-timeout-s", true, "how long the cluster may take to become ready (default 60)"},
    {"backend", true, "workers' backend: auto (default: cuda when a GPU is visible), cuda or cpu"},
    {"precision", true, "workers' precision: auto (default: bf16 on cuda, fp32 on cpu), bf16 or fp32"},
    {"device", true, "CUDA device of every worker (default: one GPU per worker, round robin over the visible ones)"},
    {"metrics-port", true, "serve the coordinator's Prometheus /metrics on this port (0: any free port); each worker "
                           "then serves its own on a free port (GetServerInfo lists them)"},
    {"tls", false, "TLS + a bearer token on the public API and mutual TLS inside, with a throwaway CA, certificate "
                   "and token (made by openssl)"},
    {"tls-dir", true, "with --tls: write ca.crt, tls.crt, tls.key and tokens here and keep them (default: a fresh "
                      "directory, removed when the cluster stops)"},
    {"insecure", false, "plaintext, no authentication (the default; loopback only)"},
    {"http-port", true, "also serve the OpenAI-compatible HTTP API on this port of 127.0.0.1 (0: a free port; with "
                        "--tls: HTTPS with the same token)"},
    {"max-queued-requests", true, "requests that may wait for room when the cluster is full (passed to the "
                                  "coordinator; default 0: refused at once)"},
};

constexpr char kSummary[] =
    "Runs a coordinator and N workers of this tessera binary on 127.0.0.1 until SIGINT/SIGTERM\n"
    "(Ctrl-C), then stops them.";

int UsageError(absl::string_view message) {
  std::cerr << "tessera local: " << message << "\n\n" << FlagsUsage("local", kSummary, kLocalFlags);
  return 2;
}

int Failure(const absl::Status& status) {
  std::cerr << "tessera local: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
  return 1;
}

absl::StatusOr<LocalClusterOptions> OptionsFromFlags(const CliFlags& flags) {
  LocalClusterOptions options;
  absl::StatusOr<int64_t> workers = flags.GetInt("workers", 0);
  if (!workers.ok()) return workers.status();
  if (!flags.Has("workers") || *workers < 1 || *workers > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workers must be in [1, 1024]. Given: ", flags.GetString("workers", "(none)")));
  }
  options.workers = static_cast<int>(*workers);
  absl::StatusOr<std::string> model = flags.RequireString("model");
  if (!model.ok()) return model.status();
  options.model_dir = *model;
  absl::StatusOr<int64_t> port = flags.GetInt("port", 50051);
  if (!port.ok()) return port.status();
  if (*port < 0 || *port > 65535) return absl::InvalidArgumentError(absl::StrCat("--port must be in [0, 65535]. Given: ", *port));
  options.coordinator_port = static_cast<int>(*port);
  if (flags.Has("memory-budget-mb")) {
    absl::StatusOr<int64_t> budget_mb = flags.GetInt("memory-budget-mb", 0);
    if (!budget_mb.ok()) return budget_mb.status();
    options.worker_flags.insert(options.worker_flags.end(), {"--memory-budget-mb", absl::StrCat(*budget_mb)});
  }
  EngineOptions engine;
  engine.backend = flags.GetString("backend", "auto");
  engine.precision = flags.GetString("precision", "auto");
  options.worker_flags.insert(options.worker_flags.end(), {"--backend", engine.backend});
  if (flags.Has("precision")) options.worker_flags.insert(options.worker_flags.end(), {"--precision", engine.precision});
  absl::StatusOr<EngineOptions> resolved = ResolveEngineOptions(engine);
  if (!resolved.ok()) return resolved.status();
  if (flags.Has("device")) {
    absl::StatusOr<int64_t> device = flags.GetInt("device", 0);
    if (!device.ok()) return device.status();
    if (resolved->backend != "cuda") {
      return absl::InvalidArgumentError(absl::StrCat("--device ", *device, " applies to CUDA workers; these run on the ",
                                                     resolved->backend, " (--backend ", engine.backend, ")"));
    }
    const int visible = VisibleCudaDevices();
    if (*device < 0 || *device >= visible) {
      return absl::InvalidArgumentError(
          absl::StrCat("--device must be in [0, ", visible, ") (the visible CUDA devices). Given: ", *device));
    }
    options.worker_devices = {static_cast<int>(*device)};  // every worker on this GPU
  } else if (resolved->backend == "cuda") {  // one GPU per worker, round robin over the visible ones
    for (int i = 0; i < VisibleCudaDevices(); ++i) options.worker_devices.push_back(i);
  }
  if (flags.Has("metrics-port")) {
    absl::StatusOr<int64_t> metrics_port = flags.GetInt("metrics-port", 0);
    if (!metrics_port.ok()) return metrics_port.status();
    if (*metrics_port < 0 || *metrics_port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("--metrics-port must be in [0, 65535]. Given: ", *metrics_port));
    }
    // The coordinator on the port asked for; workers on free ones, so that
    // several on one host never collide.
    options.coordinator_flags.insert(options.coordinator_flags.end(), {"--metrics-port", absl::StrCat(*metrics_port)});
    options.worker_flags.insert(options.worker_flags.end(), {"--metrics-port", "0"});
  }
  if (flags.Has("min-shard-tokens")) {
    absl::StatusOr<int64_t> min_shard_tokens = flags.GetInt("min-shard-tokens", 0);
    if (!min_shard_tokens.ok()) return min_shard_tokens.status();
    options.coordinator_flags.insert(options.coordinator_flags.end(),
                                     {"--min-shard-tokens", absl::StrCat(*min_shard_tokens)});
  }
  for (const char* name : {"shard-layout", "zigzag-min-tokens"}) {  // checked by the coordinator
    if (flags.Has(name)) {
      options.coordinator_flags.insert(options.coordinator_flags.end(),
                                       {absl::StrCat("--", name), flags.GetString(name, "")});
    }
  }
  if (flags.Has("max-context-tokens")) {
    absl::StatusOr<int64_t> context = flags.GetInt("max-context-tokens", 0);
    if (!context.ok()) return context.status();
    if (*context < 0) return absl::InvalidArgumentError(absl::StrCat("--max-context-tokens must be >= 0. Given: ", *context));
    for (std::vector<std::string>* role : {&options.coordinator_flags, &options.worker_flags}) {
      role->insert(role->end(), {"--max-context-tokens", absl::StrCat(*context)});
    }
  }
  if (flags.Has("max-new-tokens-limit")) {  // the workers check it again: they must agree
    absl::StatusOr<int64_t> limit = flags.GetInt("max-new-tokens-limit", 0);
    if (!limit.ok()) return limit.status();
    for (std::vector<std::string>* role : {&options.coordinator_flags, &options.worker_flags}) {
      role->insert(role->end(), {"--max-new-tokens-limit", absl::StrCat(*limit)});
    }
  }
  if (flags.Has("prefill-chunk-tokens")) {
    absl::StatusOr<int64_t> piece = flags.GetInt("prefill-chunk-tokens", 0);
    if (!piece.ok()) return piece.status();
    if (*piece < 0) {
      return absl::InvalidArgumentError(absl::StrCat("--prefill-chunk-tokens must be >= 0 (0: sized from free memory). "
                                                     "Given: ", *piece));
    }
    options.worker_flags.insert(options.worker_flags.end(), {"--prefill-chunk-tokens", absl::StrCat(*piece)});
  }
  for (const char* name : {"prefix-block-tokens", "warmup-tokens", "max-pass-tokens"}) {  // the workers check them
    if (flags.Has(name)) {
      options.worker_flags.insert(options.worker_flags.end(), {absl::StrCat("--", name), flags.GetString(name, "")});
    }
  }
  if (flags.Has("tokenizer")) {
    options.coordinator_flags.insert(options.coordinator_flags.end(), {"--tokenizer", flags.GetString("tokenizer", "")});
  }
  if (flags.Has("http-port")) {
    absl::StatusOr<int64_t> http_port = flags.GetInt("http-port", 0);
    if (!http_port.ok()) return http_port.status();
    if (*http_port < 0 || *http_port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("--http-port must be in [0, 65535]. Given: ", *http_port));
    }
    options.coordinator_flags.insert(options.coordinator_flags.end(),
                                     {"--http-listen", absl::StrCat("127.0.0.1:", *http_port)});
  }
  if (flags.Has("max-queued-requests")) {
    absl::StatusOr<int64_t> queued = flags.GetInt("max-queued-requests", 0);
    if (!queued.ok()) return queued.status();
    options.coordinator_flags.insert(options.coordinator_flags.end(), {"--max-queued-requests", absl::StrCat(*queued)});
  }
  if (flags.Has("tls") && flags.Has("insecure")) return absl::InvalidArgumentError("--tls conflicts with --insecure");
  if (flags.Has("tls-dir") && !flags.Has("tls")) return absl::InvalidArgumentError("--tls-dir needs --tls");
  options.log_path = flags.GetString("log-file", "");
  absl::StatusOr<double> ready_timeout_s = flags.GetDouble("ready-timeout-s", 60);
  if (!ready_timeout_s.ok()) return ready_timeout_s.status();
  if (!(*ready_timeout_s > 0 && *ready_timeout_s < 1e6)) {
    return absl::InvalidArgumentError(absl::StrCat("--ready-timeout-s must be > 0. Given: ", *ready_timeout_s));
  }
  options.ready_timeout = std::chrono::milliseconds(static_cast<int64_t>(*ready_timeout_s * 1000));
  return options;
}

// Whether the coordinator will have a tokenizer (the same default as its own).
bool HasTokenizer(const CliFlags& flags, const std::string& model_dir) {
  if (flags.Has("tokenizer")) return !flags.GetString("tokenizer", "").empty();
  return access((model_dir + "/tokenizer.json").c_str(), R_OK) == 0;
}

// "  metrics: coordinator http://H:P/metrics, workers http://..., ..." from
// GetServerInfo (the ports are the bound ones when 0 was asked for).
std::string MetricsLine(const std::string& address, const ChannelSecurity& security) {
  std::unique_ptr<v1::Tessera::Stub> stub = v1::Tessera::NewStub(MakeChannel(address, security));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ServerInfo info;
  const grpc::Status status = stub->GetServerInfo(&context, v1::GetServerInfoRequest(), &info);
  if (!status.ok()) return absl::StrCat("  metrics: GetServerInfo failed: ", status.error_message(), "\n");
  const auto url = [](const std::string& host_port) {
    return host_port.empty() ? std::string("(not served)") : absl::StrCat("http://", host_port, "/metrics");
  };
  std::string line = absl::StrCat("  metrics: coordinator ", url(info.metrics_address()), ", workers");
  for (int i = 0; i < info.workers_size(); ++i) {
    absl::StrAppend(&line, i == 0 ? " " : ", ", url(info.workers(i).metrics_address()));
  }
  return line + "\n";
}

sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  return signals;
}

bool StopSignalPending() {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1 ||
         sigismember(&pending, SIGHUP) == 1;
}

// Until a stop signal (0) or the coordinator's death (1).
int ServeUntilSignal(LocalCluster& cluster) {
  const sigset_t signals = StopSignals();
  const timespec one_second = {.tv_sec = 1, .tv_nsec = 0};
  while (true) {
    const int signal = sigtimedwait(&signals, nullptr, &one_second);
    if (signal > 0) {
      std::cout << "local cluster: SIG" << sigabbrev_np(signal) << ", stopping" << std::endl;
      return 0;
    }
    for (const LocalClusterExit& exit : cluster.ReapExitedChildren()) {
      if (exit.worker < 0) {
        std::cerr << "tessera local: the coordinator " << DescribeWaitStatus(exit.wait_status) << "; stopping\n";
        return 1;
      }
      std::cerr << "tessera local: worker " << exit.worker << " " << DescribeWaitStatus(exit.wait_status)
                << "; the others keep serving\n";
    }
  }
}

// The certificates and token of a --tls cluster, in `dir` or a fresh
// directory (`remove_dir` then says to remove it at the end).
absl::Status PrepareTls(const CliFlags& flags, LocalClusterOptions& options, std::string& dir, bool& remove_dir) {
  dir = flags.GetString("tls-dir", "");
  remove_dir = dir.empty();
  if (remove_dir) {
    const char* tmp = getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/tessera-local-tls.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("cannot create a directory like ", pattern, ": ", strerror(errno)));
    }
    dir = pattern;
  }
  absl::StatusOr<LocalTlsFiles> files = GenerateLocalTls(dir);
  if (!files.ok()) return files.status();
  options.security = {.insecure = false,
                      .cert_path = files->cert,
                      .key_path = files->key,
                      .ca_path = files->ca_cert,
                      .tokens_path = files->tokens,
                      .client_token = files->token};
  return absl::OkStatus();
}

void RemoveTlsDir(const std::string& dir) {
  for (const char* name : {"ca.crt", "ca.key", "tls.crt", "tls.key", "tokens", "openssl.log", "openssl.cnf", "tls.csr",
                           "ca.srl", "token.tmp"}) {
    unlink((dir + "/" + name).c_str());
  }
  rmdir(dir.c_str());
}

}  // namespace

int RunLocalCommand(int argc, char** argv) {
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kLocalFlags);
  if (!flags.ok()) return UsageError(flags.status().message());
  if (flags->help()) {
    std::cout << FlagsUsage("local", kSummary, kLocalFlags);
    return 0;
  }
  absl::StatusOr<LocalClusterOptions> options = OptionsFromFlags(*flags);
  if (!options.ok()) return UsageError(options.status().message());
  absl::StatusOr<std::string> binary = FindTesseraBinaryNextToSelf();
  if (!binary.ok()) return Failure(binary.status());
  options->binary = *binary;
  options->cancel_requested = StopSignalPending;
  std::string tls_dir;
  bool remove_tls_dir = false;
  if (flags->Has("tls")) {
    if (absl::Status status = PrepareTls(*flags, *options, tls_dir, remove_tls_dir); !status.ok()) {
      if (remove_tls_dir && !tls_dir.empty()) RemoveTlsDir(tls_dir);
      return Failure(status);
    }
  }

  const sigset_t signals = StopSignals();
  sigset_t previous_mask;
  pthread_sigmask(SIG_BLOCK, &signals, &previous_mask);
  // A shell starts background jobs with SIGINT ignored, and an ignored signal
  // never becomes pending; this command exists to stop on it, so take it back.
  struct sigaction previous_actions[3];
  const int stop_signals[3] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction default_action = {};
  default_action.sa_handler = SIG_DFL;
  for (int i = 0; i < 3; ++i) sigaction(stop_signals[i], &default_action, &previous_actions[i]);
  int exit_code = 0;
  {
    absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(*options);
    if (!cluster.ok()) {
      exit_code = Failure(cluster.status());
    } else {
      const std::string& address = (*cluster)->address();
      const std::string prompt =
          HasTokenizer(*flags, options->model_dir) ? "--prompt \"Hello\"" : "--prompt-ids \"1,2,3\"";
      const std::string client_flags =
          options->security.insecure
              ? std::string()
              : absl::StrCat(" --tls-ca ", options->security.ca_path, " --token-file ", options->security.tokens_path);
      std::cout << "local cluster: coordinator on " << address << ", " << (*cluster)->workers() << " workers ready\n"
                << "  internal API (workers register here): " << (*cluster)->internal_address() << "\n"
                << (options->security.insecure
                        ? "  INSECURE: no TLS, no authentication (plaintext on 127.0.0.1; --tls for TLS, mutual TLS "
                          "and a token)\n"
                        : absl::StrCat("  TLS: public API over TLS with a bearer token, mutual TLS inside; throwaway "
                                       "CA, certificate and token in ",
                                       tls_dir, remove_tls_dir ? " (removed when the cluster stops)" : "", "\n"))
                << (flags->Has("metrics-port") ? MetricsLine(address, (*cluster)->client_security()) : std::string())
                << ((*cluster)->http_address().empty()
                        ? std::string()
                        : absl::StrCat("  OpenAI-compatible HTTP API: ", options->security.insecure ? "http" : "https",
                                       "://", (*cluster)->http_address(), "/v1\n"))
                << "  try: tessera generate --server " << address << client_flags << " " << prompt
                << " --max-new-tokens 16\n"
                << "  Ctrl-C stops the cluster" << std::endl;
      exit_code = ServeUntilSignal(**cluster);
      (*cluster)->Stop();
      std::cout << "local cluster: stopped" << std::endl;
    }
  }
  // A signal that cancelled the start is still pending: take it, so that
  // unblocking does not kill us after the clean stop.
  const timespec no_wait = {.tv_sec = 0, .tv_nsec = 0};
  while (sigtimedwait(&signals, nullptr, &no_wait) > 0) {
  }
  for (int i = 0; i < 3; ++i) sigaction(stop_signals[i], &previous_actions[i], nullptr);
  pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  if (remove_tls_dir) RemoveTlsDir(tls_dir);
  return exit_code;
}

}  // namespace tessera
