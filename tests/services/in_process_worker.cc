// The pieces of `tessera worker` minus the process: engine view over shared
// weights, transports with the model's limits, runner, service, server.
#include "tests/services/in_process_worker.h"

#include <map>
#include <mutex>

#include "grpcpp/grpcpp.h"
#include "model/model_weights.h"
#include "rpc/grpc_util.h"
#include "services/worker_service.h"
#include "transport/worker_transports.h"
#include "worker/cpu/cpu_backend.h"
#include "worker/network_limits.h"
#include "worker/shard_runner.h"

namespace tessera::testing {
namespace {

const ModelWeights* WeightsOf(const std::string& dir) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<ModelWeights>> loaded;
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<ModelWeights>& weights = loaded[dir];
  if (weights == nullptr) {
    absl::StatusOr<std::unique_ptr<ModelWeights>> w = LoadModelWeights(dir);
    if (!w.ok()) return nullptr;
    weights = *std::move(w);
  }
  return weights.get();
}

class Worker final : public InProcessWorker {
 public:
  bool Start(const ModelWeights& weights) {
    absl::StatusOr<std::unique_ptr<Engine>> engine = MakeCpuEngineView(weights);
    if (!engine.ok()) return false;
    engine_ = *std::move(engine);
    ShardRunnerOptions options;
    options.max_context_tokens = weights.config.max_position_embeddings;
    const ShardLengthBounds bounds = ShardLengthBoundsOf(*engine_, options);
    transports_ = std::make_unique<WorkerTransports>(nullptr, nullptr, PeerMailboxLimitsFor(weights.config, bounds));
    runner_ = std::make_unique<ShardRunner>(*engine_, *transports_, options);
    service_ = std::make_unique<WorkerService>(*runner_, *transports_, "");
    grpc::ServerBuilder builder;
    int port = 0;
    ConfigureServerBuilder(builder, "127.0.0.1:0", &port);
    const WorkerMessageLimits limits = WorkerMessageLimitsFor(weights.config, bounds);
    builder.SetMaxReceiveMessageSize(static_cast<int>(limits.max_receive_bytes));
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port == 0) return false;
    address_ = WithPort("127.0.0.1:0", port);
    runner_->set_address(address_);
    return true;
  }
  ~Worker() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }

  const std::string& address() const override { return address_; }
  int64_t MemoryUsed() const override { return runner_->memory_used_bytes(); }

 private:
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<WorkerTransports> transports_;
  std::unique_ptr<ShardRunner> runner_;
  std::unique_ptr<WorkerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace

std::unique_ptr<InProcessWorker> InProcessWorker::Start(const std::string& model_dir) {
  const ModelWeights* weights = WeightsOf(model_dir);
  if (weights == nullptr) return nullptr;
  auto worker = std::make_unique<Worker>();
  if (!worker->Start(*weights)) return nullptr;
  return worker;
}

}  // namespace tessera::testing
