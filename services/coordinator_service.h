// The coordinator's gRPC face: tessera.v1.Tessera for clients and
// tessera.v1.Coordinator for workers' registration, on one server with the
// standard health and reflection services. Each handler converts the message
// to the coordinator's types (coordinator_proto.h), hands ServerContext's
// cancellation and deadline over as a CallerContext, calls the Coordinator,
// and converts back (absl::Status inside, grpc::Status out). Nothing else.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/coordinator.h"
#include "grpcpp/grpcpp.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tessera/v1/worker.grpc.pb.h"

namespace tessera {

class TesseraService final : public v1::Tessera::Service {
 public:
  explicit TesseraService(Coordinator& coordinator) : coordinator_(coordinator) {}

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        v1::GenerateResponse* response) override;
  grpc::Status GenerateStream(grpc::ServerContext* context, const v1::GenerateRequest* request,
                              grpc::ServerWriter<v1::GenerateStreamResponse>* writer) override;
  grpc::Status GetModelInfo(grpc::ServerContext* context, const v1::GetModelInfoRequest* request,
                            v1::ModelInfo* response) override;
  grpc::Status GetServerInfo(grpc::ServerContext* context, const v1::GetServerInfoRequest* request,
                             v1::ServerInfo* response) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override;

 private:
  Coordinator& coordinator_;
};

class WorkerRegistrationService final : public v1::Coordinator::Service {
 public:
  explicit WorkerRegistrationService(Coordinator& coordinator) : coordinator_(coordinator) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;

 private:
  Coordinator& coordinator_;
};

// A serving coordinator: the Coordinator, its services and the server.
class CoordinatorServer {
 public:
  // Binds `listen_address` (port 0: any free port), starts serving and the
  // workers' health checks. Metrics, when wanted, come in `options` (the
  // caller serves their registry: see tools/coordinator_command.cc).
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(const std::string& listen_address, ServedModel model,
                                                                  const CoordinatorOptions& options);
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;
  ~CoordinatorServer();  // Shutdown()

  // HOST:PORT as bound.
  const std::string& address() const { return address_; }
  Coordinator& coordinator() { return *coordinator_; }

  // Marks health NOT_SERVING, ends running requests (their worker calls are
  // cancelled), stops the server and the health checks. Idempotent.
  void Shutdown();

 private:
  CoordinatorServer() = default;

  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<TesseraService> tessera_service_;
  std::unique_ptr<WorkerRegistrationService> registration_service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  bool shut_down_ = false;
};

}  // namespace tessera
