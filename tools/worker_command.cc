// `tessera worker --model DIR [--listen HOST:PORT] [--coordinator HOST:PORT]`:
// loads the model, serves Worker (+ health, reflection), registers with the
// coordinator every second (so a restarted coordinator or worker finds its
// peer again), and stops cleanly on SIGINT/SIGTERM.
#include "tools/worker_command.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/linear.h"
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
#include "worker/shard_runner.h"
#include "worker/worker_metrics.h"

#ifdef TESSERA_HAVE_NCCL
#include "transport/nccl_groups.h"
#endif

namespace tessera {
namespace {

constexpr FlagSpec kWorkerFlags[] = {
    {"model", true, "Hugging Face model directory"},
    {"listen", true, "address to serve on (default 127.0.0.1:0: a free port)"},
    {"coordinator", true, "coordinator address to register with (optional)"},
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
};

// Registers every second until stopped; quiet about failures (the
// coordinator may start later), loud about the first success.
class Registrar {
 public:
  Registrar(std::string coordinator, std::string address)
      : stub_(tessera::v1::Coordinator::NewStub(MakeChannel(coordinator))),
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
      registered = status.ok();
      lock.lock();
      wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
    }
  }

  std::unique_ptr<tessera::v1::Coordinator::Stub> stub_;
  std::string address_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

absl::Status Serve(const CliFlags& flags) {
  ASSIGN_OR_RETURN(std::string model_dir, flags.RequireString("model"));
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
  ASSIGN_OR_RETURN(int64_t max_context_tokens, flags.GetInt("max-context-tokens", 0));
  ASSIGN_OR_RETURN(const ContextLimit context, ResolveContextLimit(engine->config(), max_context_tokens));
  if (!context.warning.empty()) std::cerr << "worker: warning: " << context.warning << "\n";
  options.max_context_tokens = context.served_tokens;
  if (backend == "cuda" && options.max_shard_tokens < engine->config().mamba.chunk_size) {
    return absl::InvalidArgumentError(absl::StrCat("--memory-budget-mb ", budget_mb, " leaves too little GPU memory for "
                                                   "a prefill's activations; lower it"));
  }
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

  WorkerTransports transports(nccl, peer_metrics.get());
  ShardRunner runner(*engine, transports, options);
  WorkerService service(runner, transports, metrics_endpoint ? metrics_endpoint->address() : std::string());
  grpc::ServerBuilder builder;
  int port = 0;
  ConfigureServerBuilder(builder, listen, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  // Messages name the advertised address, known only once the port is bound.
  const std::string address = flags.GetString("advertise", WithPort(listen, port));
  runner.set_address(address);
  std::cout << "worker listening on " << address << " (" << engine->config().model_type << ", "
            << engine->Describe() << ", K/V budget " << budget_mb << " MiB"
            << (options.max_shard_tokens > 0 ? absl::StrCat(", shards up to ", options.max_shard_tokens, " tokens")
                                             : std::string())
            << (metrics_endpoint ? ", metrics on " + metrics_endpoint->address() : std::string()) << ")"
            << std::endl;

  std::unique_ptr<Registrar> registrar;
  if (flags.Has("coordinator")) registrar = std::make_unique<Registrar>(flags.GetString("coordinator", ""), address);
  const int signal = WaitForShutdownSignal();
  std::cerr << "worker " << address << ": signal " << signal << ", shutting down\n";
  registrar.reset();
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
