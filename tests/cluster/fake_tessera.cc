// A stand-in `tessera` binary for the cluster tests: the coordinator and worker
// roles reduced to what LocalCluster relies on (the listening line, worker
// registration, workers_ready, exiting on SIGTERM), plus the real `local` and
// `generate` commands so those run end to end against it.
//
// Why a fake: the real coordinator and worker need a model and are written
// elsewhere; process handling deserves tests that take milliseconds and can
// misbehave on purpose (--fake-* flags).
//
//   coordinator: serves tessera.v1.Tessera (GetModelInfo, GetServerInfo, a
//     GenerateStream that emits 4 progress events and then ids last+1,
//     last+2, ...) on --listen and tessera.v1.Coordinator.RegisterWorker on a
//     free port of its own (printed first, as the real one does); polls each
//     registered worker's Worker.GetStatus every 100 ms and forgets the ones
//     that do not answer.
//   worker: serves Worker.GetStatus, registers, waits for SIGTERM.
// Security as the real roles take it: --insecure, or --tls-cert/--tls-key/
// --tls-ca (mutual TLS inside) and, for the coordinator, --auth-tokens-file
// (TLS + bearer tokens on the public API), through the same rpc/ builders.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "rpc/grpc_security.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tessera/v1/worker.grpc.pb.h"
#include "tools/cli/cli_flags.h"
#include "tools/cluster/generate_command.h"
#include "tools/cluster/local_command.h"

namespace tessera {
namespace {

constexpr int32_t kFakeLayers = 4;
constexpr int32_t kFakeVocab = 1000;
constexpr int32_t kFakeMaxNewTokens = 256;

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void WaitForStopSignal(const sigset_t& signals) {
  int signal = 0;
  sigwait(&signals, &signal);
}

// gRPC's teardown at exit takes over a second; the fake has nothing to
// flush but stdio, and the tests stop dozens of these.
[[noreturn]] void ExitNow(int code) {
  std::fflush(nullptr);
  _exit(code);
}

// Sets the process's internal security from the flags; false (with a
// message) when neither --insecure nor the three files are given.
bool SetSecurityFromFlags(const CliFlags& flags, const char* role) {
  if (flags.Has("insecure")) return true;  // the default internal security is plaintext
  absl::StatusOr<InternalSecurity> cluster =
      LoadClusterSecurity(flags.GetString("tls-cert", ""), flags.GetString("tls-key", ""),
                          flags.GetString("tls-ca", ""), "");
  if (!cluster.ok()) {
    std::cerr << "fake " << role << ": give --insecure or the TLS files: " << cluster.status() << "\n";
    return false;
  }
  SetInternalSecurity(*std::move(cluster));
  return true;
}

grpc::Status Invalid(const std::string& message) { return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message); }

class FakeCoordinator final : public v1::Tessera::Service, public v1::Coordinator::Service {
 public:
  FakeCoordinator(std::string model_dir, std::string extra) : model_dir_(std::move(model_dir)), extra_(std::move(extra)) {}

  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override {
    absl::MutexLock lock(&mu_);
    workers_[request->address()].stub = v1::Worker::NewStub(MakeChannel(request->address()));
    response->set_workers_ready(static_cast<int32_t>(workers_.size()));
    return grpc::Status::OK;
  }

  grpc::Status GetModelInfo(grpc::ServerContext*, const v1::GetModelInfoRequest*, v1::ModelInfo* info) override {
    absl::MutexLock lock(&mu_);
    info->set_model_type(absl::StrCat("fake", extra_));
    info->set_model_path(model_dir_);
    info->set_vocab_size(kFakeVocab);
    info->set_num_layers(kFakeLayers);
    info->set_workers_ready(static_cast<int32_t>(workers_.size()));
    info->set_max_new_tokens_limit(kFakeMaxNewTokens);
    info->set_eos_token_id(kFakeVocab - 1);
    return grpc::Status::OK;
  }

  grpc::Status GetServerInfo(grpc::ServerContext*, const v1::GetServerInfoRequest*, v1::ServerInfo* info) override {
    absl::MutexLock lock(&mu_);
    info->set_version("fake");
    for (const auto& [address, worker] : workers_) {
      v1::WorkerInfo* out = info->add_workers();
      out->set_address(address);
      out->set_ready(true);
      out->set_memory_budget_bytes(worker.memory_budget_bytes);
    }
    return grpc::Status::OK;
  }

  grpc::Status GenerateStream(grpc::ServerContext*, const v1::GenerateRequest* request,
                              grpc::ServerWriter<v1::GenerateStreamResponse>* writer) override {
    const int32_t prompt_tokens = request->prompt_token_ids_size();
    if (prompt_tokens == 0) return Invalid("prompt_token_ids must not be empty");
    if (request->sampling().temperature() < 0) {
      return Invalid(absl::StrCat("temperature must be >= 0. Given: ", request->sampling().temperature()));
    }
    const int32_t max_new_tokens = request->stopping().max_new_tokens();
    if (max_new_tokens < 1 || max_new_tokens > kFakeMaxNewTokens) {
      return Invalid(absl::StrCat("max_new_tokens must be in [1, ", kFakeMaxNewTokens, "]. Given: ", max_new_tokens));
    }
    int32_t shards = 0;
    {
      absl::MutexLock lock(&mu_);
      shards = std::max<int32_t>(1, std::min<int32_t>(static_cast<int32_t>(workers_.size()), prompt_tokens));
    }
    v1::GenerateStreamResponse event;
    for (int32_t layer = 1; layer <= kFakeLayers; ++layer) {
      event.Clear();
      v1::PrefillProgress& progress = *event.mutable_progress();
      progress.set_layers_done(layer);
      progress.set_layers_total(kFakeLayers);
      progress.set_prompt_tokens(prompt_tokens);
      progress.set_shards(shards);
      writer->Write(event);
    }
    v1::FinishReason reason = v1::FINISH_REASON_LENGTH;
    int32_t produced = 0;
    const int32_t last = request->prompt_token_ids(prompt_tokens - 1);
    while (produced < max_new_tokens && reason == v1::FINISH_REASON_LENGTH) {
      const int32_t token = (last + produced + 1) % kFakeVocab;
      ++produced;
      event.Clear();
      event.mutable_tokens()->add_token_ids(token);
      writer->Write(event);
      for (int32_t stop : request->stopping().stop_token_ids()) {
        if (token == stop) reason = v1::FINISH_REASON_STOP_TOKEN;
      }
    }
    event.Clear();
    v1::GenerateResponse& finished = *event.mutable_finished();
    finished.set_finish_reason(reason);
    finished.mutable_usage()->set_prompt_tokens(prompt_tokens);
    finished.mutable_usage()->set_completion_tokens(produced);
    finished.mutable_usage()->set_total_tokens(prompt_tokens + produced);
    finished.set_shards(shards);
    writer->Write(event);
    return grpc::Status::OK;
  }

  // Forgets workers that stop answering GetStatus.
  void CheckWorkersOnce() {
    std::map<std::string, v1::Worker::Stub*> stubs;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [address, worker] : workers_) stubs[address] = worker.stub.get();
    }
    for (const auto& [address, stub] : stubs) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
      v1::WorkerStatus status;
      const bool alive = stub->GetStatus(&context, v1::GetWorkerStatusRequest(), &status).ok();
      absl::MutexLock lock(&mu_);
      if (alive) {
        workers_[address].memory_budget_bytes = status.memory_budget_bytes();
      } else {
        workers_.erase(address);
      }
    }
  }

 private:
  struct Worker {
    std::unique_ptr<v1::Worker::Stub> stub;
    int64_t memory_budget_bytes = 0;
  };

  const std::string model_dir_;
  const std::string extra_;
  absl::Mutex mu_;
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);
};

class FakeWorker final : public v1::Worker::Service {
 public:
  explicit FakeWorker(int64_t memory_budget_bytes) : memory_budget_bytes_(memory_budget_bytes) {}

  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetWorkerStatusRequest*, v1::WorkerStatus* status) override {
    status->set_model_type("fake");
    status->set_memory_budget_bytes(memory_budget_bytes_);
    return grpc::Status::OK;
  }

 private:
  const int64_t memory_budget_bytes_;
};

constexpr FlagSpec kCoordinatorFlags[] = {
    {"listen", true, ""},
    {"model", true, ""},
    {"min-shard-tokens", true, "reported back in ModelInfo.model_type"},
    {"insecure", false, ""},
    {"tls-cert", true, ""},
    {"tls-key", true, ""},
    {"tls-ca", true, ""},
    {"auth-tokens-file", true, ""},
    {"fake-exit-before-listening", false, "exit 3 at once"},
    {"fake-never-listen", false, "never print the listening line"},
};

constexpr FlagSpec kWorkerFlags[] = {
    {"listen", true, ""},
    {"coordinator", true, ""},
    {"model", true, ""},
    {"memory-budget-mb", true, "reported in WorkerStatus.memory_budget_bytes"},
    {"backend", true, "accepted like the real worker's (ignored)"},
    {"precision", true, "accepted like the real worker's (ignored)"},
    {"device", true, "accepted like the real worker's (ignored)"},
    {"insecure", false, ""},
    {"tls-cert", true, ""},
    {"tls-key", true, ""},
    {"tls-ca", true, ""},
    {"fake-exit-at-start", false, "exit 4 at once"},
    {"fake-ignore-sigterm", false, "survive SIGTERM (only SIGKILL stops it)"},
};

int RunFakeCoordinator(int argc, char** argv) {
  const sigset_t signals = BlockStopSignals();
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kCoordinatorFlags);
  if (!flags.ok()) {
    std::cerr << "fake coordinator: " << flags.status() << "\n";
    return 2;
  }
  if (flags->Has("fake-exit-before-listening")) {
    std::cerr << "fake coordinator: exiting before listening, as asked\n";
    return 3;
  }
  if (flags->Has("fake-never-listen")) {
    WaitForStopSignal(signals);
    return 0;
  }
  const std::string extra =
      flags->Has("min-shard-tokens") ? absl::StrCat(" min_shard_tokens=", flags->GetString("min-shard-tokens", "")) : "";
  if (!SetSecurityFromFlags(*flags, "coordinator")) return 2;
  ServerSecurity public_security = ServerSecurity::Insecure();
  if (!flags->Has("insecure")) {
    absl::StatusOr<std::shared_ptr<BearerTokenAuth>> tokens =
        BearerTokenAuth::FromFile(flags->GetString("auth-tokens-file", ""));
    if (!tokens.ok()) {
      std::cerr << "fake coordinator: " << tokens.status() << "\n";
      return 2;
    }
    public_security.insecure = false;
    public_security.identity = GetInternalSecurity().server.identity;
    public_security.auth = *tokens;
  }
  FakeCoordinator service(flags->GetString("model", ""), extra);
  const std::string listen = flags->GetString("listen", "127.0.0.1:0");
  grpc::ServerBuilder internal_builder;
  int internal_port = 0;
  ConfigureServerBuilder(internal_builder, WithPort(listen, 0), &internal_port);
  internal_builder.RegisterService(static_cast<v1::Coordinator::Service*>(&service));
  std::unique_ptr<grpc::Server> internal_server = internal_builder.BuildAndStart();
  grpc::ServerBuilder builder;
  int port = 0;
  ConfigureServerBuilder(builder, listen, public_security, &port);
  builder.RegisterService(static_cast<v1::Tessera::Service*>(&service));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0 || internal_server == nullptr || internal_port == 0) {
    std::cerr << "fake coordinator: cannot listen on " << listen << "\n";
    return 1;
  }
  std::printf("coordinator internal API on %s\n", WithPort(listen, internal_port).c_str());
  std::printf("coordinator listening on %s\n", WithPort(listen, port).c_str());
  std::printf("fake coordinator: more stdout after the address line\n");
  std::fflush(stdout);

  std::atomic<bool> stopping{false};
  std::thread health([&] {
    while (!stopping.load()) {
      service.CheckWorkersOnce();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  WaitForStopSignal(signals);
  stopping.store(true);
  server->Shutdown(std::chrono::system_clock::now());  // cancel what is in flight: nothing to finish
  internal_server->Shutdown(std::chrono::system_clock::now());
  health.join();
  ExitNow(0);
}

int RunFakeWorker(int argc, char** argv) {
  const sigset_t signals = BlockStopSignals();
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kWorkerFlags);
  if (!flags.ok()) {
    std::cerr << "fake worker: " << flags.status() << "\n";
    return 2;
  }
  if (flags->Has("fake-exit-at-start")) {
    std::cerr << "fake worker: exiting at start, as asked\n";
    return 4;
  }
  if (!SetSecurityFromFlags(*flags, "worker")) return 2;
  absl::StatusOr<int64_t> budget_mb = flags->GetInt("memory-budget-mb", 0);
  const std::string listen = flags->GetString("listen", "127.0.0.1:0");
  grpc::ServerBuilder builder;
  int port = 0;
  ConfigureServerBuilder(builder, listen, &port);
  FakeWorker service(budget_mb.ok() ? *budget_mb << 20 : 0);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "fake worker: cannot listen on " << listen << "\n";
    return 1;
  }
  const std::string address = WithPort(listen, port);

  auto coordinator = v1::Coordinator::NewStub(MakeChannel(flags->GetString("coordinator", "")));
  grpc::ClientContext context;
  context.set_wait_for_ready(true);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::RegisterWorkerRequest request;
  request.set_address(address);
  v1::RegisterWorkerResponse response;
  const grpc::Status status = coordinator->RegisterWorker(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "fake worker: RegisterWorker failed: " << status.error_message() << "\n";
    return 1;
  }
  std::cerr << "fake worker: registered as " << address << "\n";

  if (flags->Has("fake-ignore-sigterm")) {
    signal(SIGTERM, SIG_IGN);
    sigset_t interrupt_only;
    sigemptyset(&interrupt_only);
    sigaddset(&interrupt_only, SIGINT);
    WaitForStopSignal(interrupt_only);
  } else {
    WaitForStopSignal(signals);
  }
  server->Shutdown(std::chrono::system_clock::now());
  ExitNow(0);
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: tessera (coordinator|worker|local|generate) [flags]\n";
    return 2;
  }
  const absl::string_view command = argv[1];
  if (command == "coordinator") return tessera::RunFakeCoordinator(argc - 1, argv + 1);
  if (command == "worker") return tessera::RunFakeWorker(argc - 1, argv + 1);
  if (command == "local") return tessera::RunLocalCommand(argc - 1, argv + 1);
  if (command == "generate") return tessera::RunGenerateCommand(argc - 1, argv + 1);
  std::cerr << "fake tessera: unknown command '" << command << "'\n";
  return 2;
}
