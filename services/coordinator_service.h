// The coordinator's gRPC face, on two listeners that never share a port:
// the public one serves tessera.v1.Tessera to clients (TLS and bearer tokens,
// see CoordinatorListeners), the internal one tessera.v1.Coordinator to
// workers (mutual TLS with the cluster CA), so a client that holds a token
// still cannot register as a worker. Both serve the standard health and
// reflection services; an optional plaintext port serves health alone. Each handler converts the message
// to the coordinator's types (coordinator_proto.h), hands ServerContext's
// cancellation and deadline over as a CallerContext, calls the Coordinator,
// and converts back (absl::Status inside, grpc::Status out). Nothing else.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/coordinator.h"
#include "grpcpp/grpcpp.h"
#include "rpc/grpc_security.h"
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
  grpc::Status Abort(grpc::ServerContext* context, const v1::AbortRequest* request,
                     v1::AbortResponse* response) override;
  grpc::Status DropPrefixCache(grpc::ServerContext* context, const v1::DropPrefixCacheRequest* request,
                               v1::DropPrefixCacheResponse* response) override;

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

// Where and how the coordinator listens.
struct CoordinatorListeners {
  std::string public_address = "127.0.0.1:50051";  // tessera.v1.Tessera (port 0: any free port)
  // tessera.v1.Coordinator; empty: DefaultInternalAddress(public_address).
  std::string internal_address;
  ServerSecurity public_security = ServerSecurity::Insecure();    // TLS + BearerTokenAuth, or insecure
  ServerSecurity internal_security = ServerSecurity::Insecure();  // mutual TLS, or insecure
  int health_port = -1;  // >= 0: plaintext grpc.health.v1 only, on the public host (0: any free port)
};

// The public host with the public port + 1; port 0 stays 0 (any free port).
std::string DefaultInternalAddress(const std::string& public_address);

// A serving coordinator: the Coordinator, its services and the servers.
class CoordinatorServer {
 public:
  // Binds both listeners (and the health port), starts serving and the
  // workers' health checks. Metrics, when wanted, come in `options` (the
  // caller serves their registry: see tools/coordinator_command.cc).
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(const CoordinatorListeners& listeners,
                                                                  ServedModel model, const CoordinatorOptions& options);
  // Plaintext on `listen_address` and on a free port of its host for the
  // internal API (in-process tests).
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(const std::string& listen_address, ServedModel model,
                                                                  const CoordinatorOptions& options);
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;
  ~CoordinatorServer();  // Shutdown()

  // HOST:PORT of the public API as bound.
  const std::string& address() const { return address_; }
  // HOST:PORT of the internal API (worker registration) as bound.
  const std::string& internal_address() const { return internal_address_; }
  // The plaintext health port as bound; 0: none.
  int health_port() const { return health_port_; }
  Coordinator& coordinator() { return *coordinator_; }

  // Marks health NOT_SERVING, ends running requests (their worker calls are
  // cancelled), stops the server and the health checks. Idempotent.
  void Shutdown();

 private:
  CoordinatorServer() = default;
  void SetAllServing(bool serving);  // grpc.health.v1 on every server

  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<TesseraService> tessera_service_;
  std::unique_ptr<WorkerRegistrationService> registration_service_;
  std::unique_ptr<grpc::Server> public_server_;
  std::unique_ptr<grpc::Server> internal_server_;
  std::unique_ptr<grpc::Server> health_server_;  // null: no health port
  std::string address_;
  std::string internal_address_;
  int health_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace tessera
