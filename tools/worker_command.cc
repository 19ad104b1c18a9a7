// `tessera worker --model DIR [--listen HOST:PORT] [--coordinator HOST:PORT]`:
// loads the model, serves Worker (+ health, reflection) on its internal
// address, registers with the coordinator's internal API every second (so a
// restarted coordinator or worker finds its peer again), and stops cleanly on
// SIGINT/SIGTERM. Everything it serves and dials is internal: mutual TLS with
// the cluster CA (--tls-cert, --tls-key, --tls-ca), or --insecure, said
// loudly on stderr.
#include "tools/worker_command.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "kernels/linear.h"
#include "rpc/grpc_security.h"
#include "rpc/grpc_util.h"
#include "rpc/metrics_endpoint.h"
#include "model/context_limit.h"
#include "services/worker_service.h"
#include "tessera/v1/worker.grpc.pb.h"
#include "tools/cli/cli_flags.h"
#include "tools/cli/engine_factory.h"
#include "tools/cli/shutdown_signal.h"
#include "transport/peer_metrics.h"
#include "transport/worker_transports.h"
#include "worker/chunked_prefill.h"
#include "worker/decode_turns.h"
#include "worker/prefix_cache.h"
#include "worker/shard_runner.h"
#include "worker/worker_metrics.h"

#ifdef TESSERA_HAVE_NCCL
#include "transport/nccl_groups.h"
#endif

namespace tessera {
namespace {

constexpr FlagSpec kWorkerFlags[] = {
    {"model", true, "Hugging Face model directory"},
    {"listen", true, "address of this worker's (internal) API (default 127.0.0.1:0: a free port)"},
    {"coordinator", true, "the coordinator's internal API address to register with (optional)"},
    {"insecure", false, "plaintext, no certificates (loopback and tests only)"},
    {"tls-cert", true, "PEM certificate of this cluster member, signed by --tls-ca (served and presented)"},
    {"tls-key", true, "PEM private key of --tls-cert"},
    {"tls-ca", true, "PEM certificate of the cluster CA: the coordinator and peers must present a certificate it "
                     "signed"},
    {"tls-server-name", true, "name the cluster's certificates carry (default: the host part of the address dialled)"},
    {"health-port", true, "also serve plaintext grpc.health.v1 (nothing else) on this port of the listen host, for "
                          "probes that cannot speak TLS (0: a free port)"},
    {"advertise", true, "address peers dial (default: the listen host and bound port)"},
    {"memory-budget-mb", true, "K/V + state memory this worker may hold (default: 1024 on cpu; on cuda half the "
                               "GPU memory free after the weights)"},
    {"blas-threads", true, "BLAS threads per matrix product (default 1)"},
    {"metrics-port", true, "serve Prometheus /metrics on this port of the listen host (0: any free port)"},
    {"backend", true, "auto (default: cuda when a GPU is visible, else cpu), cuda or cpu"},
    {"precision", true, "auto (default: bf16 on cuda, fp32 on cpu), bf16 or fp32"},
    {"device", true, "CUDA device index (default 0)"},
    {"max-context-tokens", true, "longest prompt + generation served (default: the checkpoint's "
                                 "max_position_embeddings, if any); the coordinator's value"},
    {"max-new-tokens-limit", true, "largest max_new_tokens a shard may ask for (default 4096); the coordinator's value"},
    {"max-pass-tokens", true, "longest prefill pass this worker runs (default 0: on cuda what the GPU memory "
                              "beside the budget holds, none on cpu); a lower value caps it (tests of prefills in "
                              "rounds)"},
    {"prefill-chunk-tokens", true, "longest piece a one-shard prefill runs in (default 0: sized from free memory: on "
                                   "cuda the longest pass the GPU memory beside the budget holds, at most 65536, a "
                                   "multiple of the SSD chunk; 8192 on cpu)"},
    {"prefix-block-tokens", true, "prefix reuse: keep the state of one-shard prompts at every multiple of this "
                                  "many tokens, for later requests that start with the same tokens (default 4096 "
                                  "rounded up to the SSD chunk; 0: off)"},
    {"max-decode-batch", true, "most requests one batched decode step runs (default 64); more wait for a later "
                               "step, in turn"},
    {"prefill-budget-tokens", true, "while requests decode on this worker, a one-shard prefill runs in pieces of at "
                                    "most this many tokens, each after the decode step in flight, so decode steps "
                                    "keep coming (default 4096; 0: off)"},
    {"warmup-tokens", true, "before serving, prefill a prompt of this many tokens and decode a few steps, so the "
                            "first request pays no one-time costs (kernel loading, cuBLAS handles, the one-row "
                            "decode graph) (default 4096 on cuda, 0 on cpu; 0: none)"},
};

// Registers every second until stopped; quiet about failures (the
// coordinator may start later), loud about the first success.
class Registrar {
 public:
  Registrar(std::string coordinator, std::string address)
      : stub_(tessera::v1::Coordinator::NewStub(MakeInternalChannel(coordinator))),
        address_(std::move(address)),
        thread_([this] { Loop(); }) {}
  ~Registrar() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  void Loop() {
    bool registered = false;
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
      tessera::v1::RegisterWorkerRequest request;
      request.set_address(address_);
      tessera::v1::RegisterWorkerResponse response;
      const grpc::Status status = stub_->RegisterWorker(&context, request, &response);
      if (status.ok() && !registered) std::cerr << "worker " << address_ << ": registered with the coordinator\n";
      // A coordinator that is starting is no news; ten seconds of failing
      // (a certificate it refuses never heals by itself) is, once.
      failures_ = status.ok() ? 0 : failures_ + 1;
      if (failures_ == 10) {
        std::cerr << "worker " << address_ << ": cannot register with the coordinator for 10 s: "
                  << status.error_message() << " (still trying)\n";
      }
      registered = status.ok();
      lock.lock();
      wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
    }
  }

  std::unique_ptr<tessera::v1::Coordinator::Stub> stub_;
  std::string address_;
  int failures_ = 0;  // consecutive failed registrations
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

// The cluster identity from the flags, or --insecure; set for the whole
// process (its server, registration and peer channels).
absl::Status SetSecurityFromFlags(const CliFlags& flags) {
  constexpr absl::string_view kSecurityFlags[] = {"tls-cert", "tls-key", "tls-ca", "tls-server-name"};
  if (flags.Has("insecure")) {
    for (absl::string_view name : kSecurityFlags) {
      if (flags.Has(name)) return absl::InvalidArgumentError(absl::StrCat("--insecure conflicts with --", name));
    }
    SetInternalSecurity({ServerSecurity::Insecure(), ChannelSecurity::Insecure()});
    return absl::OkStatus();
  }
  std::vector<std::string> missing;
  for (absl::string_view name : {"tls-cert", "tls-key", "tls-ca"}) {
    if (flags.GetString(name, "").empty()) missing.push_back(absl::StrCat("--", name));
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a worker talks mutual TLS with the cluster CA: give --tls-cert, --tls-key and --tls-ca (missing: ",
        absl::StrJoin(missing, ", "), "), or --insecure for plaintext without authentication"));
  }
  ASSIGN_OR_RETURN(InternalSecurity cluster,
                   LoadClusterSecurity(flags.GetString("tls-cert", ""), flags.GetString("tls-key", ""),
                                       flags.GetString("tls-ca", ""), flags.GetString("tls-server-name", "")));
  SetInternalSecurity(std::move(cluster));
  return absl::OkStatus();
}

absl::Status Serve(const CliFlags& flags) {
  ASSIGN_OR_RETURN(std::string model_dir, flags.RequireString("model"));
  RETURN_IF_ERROR(SetSecurityFromFlags(flags));  // before the model: a bad flag fails at once
  int64_t health_port = -1;
  if (flags.Has("health-port")) {
    ASSIGN_OR_RETURN(health_port, flags.GetInt("health-port", 0));
    if (health_port < 0 || health_port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("--health-port must be in [0, 65535]. Given: ", health_port));
    }
  }
  const std::string listen = flags.GetString("listen", "127.0.0.1:0");
  ASSIGN_OR_RETURN(int64_t budget_mb, flags.GetInt("memory-budget-mb", 0));  // 0: the engine's default
  ASSIGN_OR_RETURN(int64_t blas_threads, flags.GetInt("blas-threads", 1));
  if (flags.Has("memory-budget-mb") && budget_mb <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("--memory-budget-mb must be > 0. Given: ", budget_mb));
  }
  cpu::SetBlasThreads(static_cast<int>(blas_threads));

  EngineOptions engine_options;
  engine_options.backend = flags.GetString("backend", "auto");
  engine_options.precision = flags.GetString("precision", "auto");
  ASSIGN_OR_RETURN(int64_t device, flags.GetInt("device", 0));
  if (device < 0 || device > 1023) return absl::InvalidArgumentError(absl::StrCat("--device must be >= 0. Given: ", device));
  engine_options.device = static_cast<int>(device);
  ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, LoadEngine(model_dir, engine_options));
  const std::string backend = engine->backend();
  ShardRunnerOptions options;
  if (!flags.Has("memory-budget-mb")) budget_mb = engine->DefaultMemoryBudgetBytes() >> 20;
  options.memory_budget_bytes = budget_mb << 20;
  options.max_shard_tokens = engine->PrefillTokenLimit(options.memory_budget_bytes);
  ASSIGN_OR_RETURN(const int64_t max_pass_tokens, flags.GetInt("max-pass-tokens", 0));
  if (max_pass_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--max-pass-tokens must be 0 (no cap) or more. Given: ",
                                                   max_pass_tokens));
  }
  if (max_pass_tokens > 0 && (options.max_shard_tokens == 0 || max_pass_tokens < options.max_shard_tokens)) {
    options.max_shard_tokens = max_pass_tokens;
  }
  ASSIGN_OR_RETURN(int64_t max_context_tokens, flags.GetInt("max-context-tokens", 0));
  ASSIGN_OR_RETURN(const ContextLimit context, ResolveContextLimit(engine->config(), max_context_tokens));
  if (!context.warning.empty()) std::cerr << "worker: warning: " << context.warning << "\n";
  options.max_context_tokens = context.served_tokens;
  ASSIGN_OR_RETURN(int64_t max_new_tokens_limit, flags.GetInt("max-new-tokens-limit", options.max_new_tokens_limit));
  if (max_new_tokens_limit < 1 || max_new_tokens_limit > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError(absl::StrCat("--max-new-tokens-limit must be in [1, ", int64_t{1} << 30,
                                                   "]. Given: ", max_new_tokens_limit));
  }
  options.max_new_tokens_limit = static_cast<int32_t>(max_new_tokens_limit);
  ASSIGN_OR_RETURN(int64_t max_decode_batch, flags.GetInt("max-decode-batch", options.max_decode_batch));
  if (max_decode_batch < 1 || max_decode_batch > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("--max-decode-batch must be in [1, 4096]. Given: ", max_decode_batch));
  }
  options.max_decode_batch = static_cast<int>(max_decode_batch);
  if (backend == "cuda" && options.max_shard_tokens < engine->config().mamba.chunk_size) {
    return absl::InvalidArgumentError(absl::StrCat("--memory-budget-mb ", budget_mb, " leaves too little GPU memory for "
                                                   "a prefill's activations; lower it"));
  }
  ASSIGN_OR_RETURN(const int64_t requested_piece, flags.GetInt("prefill-chunk-tokens", 0));
  absl::StatusOr<int64_t> piece =
      ChoosePrefillChunkTokens(requested_piece, options.max_shard_tokens, engine->config().mamba.chunk_size);
  if (!piece.ok()) {
    return absl::Status(piece.status().code(), absl::StrCat("--prefill-chunk-tokens ", piece.status().message()));
  }
  engine->set_prefill_chunk_tokens(*piece);
  ASSIGN_OR_RETURN(const int64_t budget, flags.GetInt("prefill-budget-tokens", kDefaultPrefillBudgetTokens));
  if (budget < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--prefill-budget-tokens must be 0 (off) or more. Given: ", budget));
  }
  engine->set_prefill_budget_tokens(budget);
  // 4096 on a GPU: a 512-token warm-up left the first 4K-token request 10 ms
  // slower than the next (the longer prefill's kernels and GEMM shapes were
  // still cold), 4096 none (bench/RESULTS.md, session 6).
  constexpr int64_t kDefaultCudaWarmupTokens = 4096;
  ASSIGN_OR_RETURN(const int64_t warmup_tokens,
                   flags.GetInt("warmup-tokens", backend == "cuda" ? kDefaultCudaWarmupTokens : 0));
  if (warmup_tokens < 0 || warmup_tokens > (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--warmup-tokens must be in [0, ", int64_t{1} << 20, "]. Given: ", warmup_tokens));
  }
  if (warmup_tokens > 0) {
    const auto start = std::chrono::steady_clock::now();
    const absl::Status warmed = engine->WarmUp(warmup_tokens);
    if (!warmed.ok()) return absl::Status(warmed.code(), absl::StrCat("warm-up: ", warmed.message()));
    std::cout << "worker warmed up: " << warmup_tokens << " prompt tokens and 3 decode steps in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count()
              << " ms\n";
  }
  ASSIGN_OR_RETURN(const int64_t requested_block, flags.GetInt("prefix-block-tokens", -1));
  absl::StatusOr<int64_t> block = ChoosePrefixBlockTokens(requested_block, engine->config().mamba.chunk_size);
  if (!block.ok()) {
    return absl::Status(block.status().code(), absl::StrCat("--prefix-block-tokens ", block.status().message()));
  }
  options.prefix_block_tokens = *block;
  NcclGroups* nccl = nullptr;
#ifdef TESSERA_HAVE_NCCL
  // GPU workers exchange shard data over NCCL when the coordinator forms a group.
  std::unique_ptr<NcclGroups> nccl_groups;
  if (backend == "cuda") {
    nccl_groups = std::make_unique<NcclGroups>(engine_options.device);
    nccl = nccl_groups.get();
  }
#endif

  auto registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<WorkerMetrics> metrics;
  std::unique_ptr<PeerMetrics> peer_metrics;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint;
  if (flags.Has("metrics-port")) {
    ASSIGN_OR_RETURN(int64_t metrics_port, flags.GetInt("metrics-port", 0));
    AddBuildInfo(*registry, "worker", backend);
    metrics = std::make_unique<WorkerMetrics>(*registry);
    peer_metrics = std::make_unique<PeerMetrics>(*registry);
    ASSIGN_OR_RETURN(metrics_endpoint, MetricsEndpoint::Start(HostOf(listen), static_cast<int>(metrics_port), registry));
    options.metrics = metrics.get();
  }

  // What peers may send is bounded by the model and this worker's limits (worker/network_limits.h).
  const ShardLengthBounds length_bounds = ShardLengthBoundsOf(*engine, options);
  WorkerTransports transports(nccl, peer_metrics.get(), PeerMailboxLimitsFor(engine->config(), length_bounds));
  ShardRunner runner(*engine, transports, options);
  WorkerService service(runner, transports, metrics_endpoint ? metrics_endpoint->address() : std::string());
  grpc::ServerBuilder builder;
  int port = 0;
  const InternalSecurity& security = GetInternalSecurity();
  ConfigureServerBuilder(builder, listen, security.server, &port);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(WorkerMessageLimitsFor(engine->config(), length_bounds).max_receive_bytes));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen,
                                               security.server.insecure ? "" : " (or the TLS credentials are unusable)"));
  }
  std::unique_ptr<grpc::Server> health_server;
  int bound_health_port = 0;
  if (health_port >= 0) {
    ASSIGN_OR_RETURN(health_server,
                     StartHealthOnlyServer(HostOf(listen), static_cast<int>(health_port), &bound_health_port));
  }
  // Messages name the advertised address, known only once the port is bound.
  const std::string address = flags.GetString("advertise", WithPort(listen, port));
  runner.set_address(address);
  std::cout << "worker listening on " << address << " (" << engine->config().model_type << ", "
            << engine->Describe() << ", K/V budget " << budget_mb << " MiB"
            << ", prefill in pieces of " << engine->prefill_chunk_tokens() << " tokens ("
            << engine->prefill_budget_tokens() << " while requests decode)"
            << ", prefix blocks of " << options.prefix_block_tokens << " tokens"
            << (options.max_shard_tokens > 0
                    ? absl::StrCat(", prefill passes of multi-shard requests up to ", options.max_shard_tokens,
                                   " tokens")
                    : std::string())
            << (metrics_endpoint ? ", metrics on " + metrics_endpoint->address() : std::string())
            << (health_server ? absl::StrCat(", plaintext health on port ", bound_health_port) : std::string()) << ")"
            << std::endl;
  std::cerr << "worker " << address << ": "
            << (security.server.insecure ? "INSECURE: no TLS, no authentication: anyone who reaches it may run shards "
                                           "and read prompts (--insecure)"
                                         : "mutual TLS with the cluster CA " + flags.GetString("tls-ca", ""))
            << "\n";

  std::unique_ptr<Registrar> registrar;
  if (flags.Has("coordinator")) registrar = std::make_unique<Registrar>(flags.GetString("coordinator", ""), address);
  const int signal = WaitForShutdownSignal();
  std::cerr << "worker " << address << ": signal " << signal << ", shutting down\n";
  registrar.reset();
  if (health_server != nullptr) health_server->Shutdown(std::chrono::system_clock::now());
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return absl::OkStatus();
}

}  // namespace

int RunWorkerCommand(int argc, char** argv) {
  BlockShutdownSignals();
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kWorkerFlags);
  if (flags.ok() && flags->help()) {
    std::cout << FlagsUsage("worker", "Serves one worker of a Tessera cluster.", kWorkerFlags);
    return 0;
  }
  const absl::Status status = flags.ok() ? Serve(*flags) : flags.status();
  if (!status.ok()) {
    std::cerr << "tessera worker: " << status << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

}  // namespace tessera
