// Thin handlers: convert, delegate, convert back. Every decision lives in
// coordinator/. Who may call which handler is settled before any runs: by the
// listener a service is registered on and that listener's credentials.
#include "services/coordinator_service.h"

#include <chrono>
#include <initializer_list>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "grpcpp/health_check_service_interface.h"
#include "rpc/grpc_util.h"
#include "rpc/metrics_endpoint.h"
#include "services/coordinator_proto.h"

namespace tessera {
namespace {

constexpr char kTesseraServiceName[] = "tessera.v1.Tessera";
constexpr char kCoordinatorServiceName[] = "tessera.v1.Coordinator";

CallerContext CallerOf(grpc::ServerContext* context) {
  CallerContext caller;
  caller.cancelled = [context] { return context->IsCancelled(); };
  caller.deadline = context->deadline();
  return caller;
}

// Writes events to a GenerateStream client; the handler thread is the only writer.
class StreamWriterEvents final : public GenerateEvents {
 public:
  explicit StreamWriterEvents(grpc::ServerWriter<v1::GenerateStreamResponse>* writer) : writer_(writer) {}

  void OnStart(const std::string& request_id) override { request_id_ = request_id; }

  bool OnProgress(const PrefillProgress& progress) override {
    v1::GenerateStreamResponse message;
    message.set_request_id(request_id_);
    *message.mutable_progress() = ToProto(progress);
    return writer_->Write(message);
  }

  bool OnTokens(const TokenDelta& tokens) override {
    v1::GenerateStreamResponse message;
    message.set_request_id(request_id_);
    *message.mutable_tokens() = ToProto(tokens);
    return writer_->Write(message);
  }

 private:
  grpc::ServerWriter<v1::GenerateStreamResponse>* writer_;
  std::string request_id_;
};

// Health of the whole server and of the services it offers: the public
// server names Tessera, the internal one Coordinator, the health port both.
void SetServing(grpc::Server* server, bool serving, std::initializer_list<const char*> services) {
  if (server == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  for (const char* service : services) health->SetServingStatus(service, serving);
}

absl::StatusOr<std::unique_ptr<grpc::Server>> Listen(const std::string& address, const ServerSecurity& security,
                                                     grpc::Service* service, absl::string_view what,
                                                     std::string* bound) {
  grpc::ServerBuilder builder;
  int port = 0;
  ConfigureServerBuilder(builder, address, security, &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve the ", what, " on ", address,
                                               security.insecure ? "" : " (or its TLS credentials are unusable)"));
  }
  *bound = WithPort(address, port);
  return server;
}

}  // namespace

grpc::Status TesseraService::Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                                      v1::GenerateResponse* response) {
  IgnoreGenerateEvents events;
  absl::StatusOr<GenerateResult> result = coordinator_.Generate(FromProto(*request), CallerOf(context), events);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = ToProto(*result);
  return grpc::Status::OK;
}

grpc::Status TesseraService::GenerateStream(grpc::ServerContext* context, const v1::GenerateRequest* request,
                                            grpc::ServerWriter<v1::GenerateStreamResponse>* writer) {
  StreamWriterEvents events(writer);
  absl::StatusOr<GenerateResult> result = coordinator_.Generate(FromProto(*request), CallerOf(context), events);
  if (!result.ok()) return ToGrpcStatus(result.status());
  if (!writer->Write(ToStreamFinished(*std::move(result)))) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  }
  return grpc::Status::OK;
}

grpc::Status TesseraService::GetModelInfo(grpc::ServerContext*, const v1::GetModelInfoRequest*,
                                          v1::ModelInfo* response) {
  *response = ToProto(coordinator_.GetModelInfo());
  return grpc::Status::OK;
}

grpc::Status TesseraService::GetServerInfo(grpc::ServerContext*, const v1::GetServerInfoRequest*,
                                           v1::ServerInfo* response) {
  *response = ToProto(coordinator_.GetServerInfo());
  return grpc::Status::OK;
}

grpc::Status TesseraService::Tokenize(grpc::ServerContext*, const v1::TokenizeRequest* request,
                                      v1::TokenizeResponse* response) {
  absl::StatusOr<std::vector<int32_t>> token_ids = coordinator_.Tokenize(FromProto(*request));
  if (!token_ids.ok()) return ToGrpcStatus(token_ids.status());
  *response = ToTokenizeResponse(*token_ids);
  return grpc::Status::OK;
}

grpc::Status TesseraService::Detokenize(grpc::ServerContext*, const v1::DetokenizeRequest* request,
                                        v1::DetokenizeResponse* response) {
  absl::StatusOr<std::string> text = coordinator_.Detokenize(FromProto(*request));
  if (!text.ok()) return ToGrpcStatus(text.status());
  *response = ToDetokenizeResponse(*std::move(text));
  return grpc::Status::OK;
}

grpc::Status TesseraService::Abort(grpc::ServerContext*, const v1::AbortRequest* request,
                                   v1::AbortResponse* response) {
  absl::StatusOr<int> aborted = coordinator_.Abort(request->request_id());
  if (!aborted.ok()) return ToGrpcStatus(aborted.status());
  response->set_aborted(*aborted);
  return grpc::Status::OK;
}

grpc::Status TesseraService::DropPrefixCache(grpc::ServerContext*, const v1::DropPrefixCacheRequest*,
                                             v1::DropPrefixCacheResponse* response) {
  absl::StatusOr<std::pair<int64_t, int>> dropped = coordinator_.DropPrefixCache();
  if (!dropped.ok()) return ToGrpcStatus(dropped.status());
  response->set_freed_bytes(dropped->first);
  response->set_workers(dropped->second);
  return grpc::Status::OK;
}

grpc::Status WorkerRegistrationService::RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest* request,
                                                       v1::RegisterWorkerResponse* response) {
  absl::StatusOr<int> workers_ready = coordinator_.RegisterWorker(request->address());
  if (!workers_ready.ok()) return ToGrpcStatus(workers_ready.status());
  response->set_workers_ready(*workers_ready);
  return grpc::Status::OK;
}

std::string DefaultInternalAddress(const std::string& public_address) {
  const size_t colon = public_address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(public_address.substr(colon + 1), &port) || port <= 0 ||
      port >= 65535) {
    return WithPort(public_address, 0);
  }
  return WithPort(public_address, port + 1);
}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(const CoordinatorListeners& listeners,
                                                                            ServedModel model,
                                                                            const CoordinatorOptions& options) {
  std::unique_ptr<CoordinatorServer> server(new CoordinatorServer());
  server->coordinator_ = std::make_unique<Coordinator>(std::move(model), options);
  server->tessera_service_ = std::make_unique<TesseraService>(*server->coordinator_);
  server->registration_service_ = std::make_unique<WorkerRegistrationService>(*server->coordinator_);

  const std::string internal_address = listeners.internal_address.empty()
                                           ? DefaultInternalAddress(listeners.public_address)
                                           : listeners.internal_address;
  ASSIGN_OR_RETURN(server->internal_server_,
                   Listen(internal_address, listeners.internal_security, server->registration_service_.get(),
                          "internal API (worker registration)", &server->internal_address_));
  ASSIGN_OR_RETURN(server->public_server_, Listen(listeners.public_address, listeners.public_security,
                                                  server->tessera_service_.get(), "public API", &server->address_));
  if (listeners.health_port >= 0) {
    ASSIGN_OR_RETURN(server->health_server_,
                     StartHealthOnlyServer(HostOf(listeners.public_address), listeners.health_port, &server->health_port_));
  }
  server->SetAllServing(true);
  server->coordinator_->StartHealthChecks();
  return server;
}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(const std::string& listen_address,
                                                                            ServedModel model,
                                                                            const CoordinatorOptions& options) {
  CoordinatorListeners listeners;
  listeners.public_address = listen_address;
  listeners.internal_address = WithPort(listen_address, 0);
  return Start(listeners, std::move(model), options);
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

void CoordinatorServer::SetAllServing(bool serving) {
  SetServing(public_server_.get(), serving, {kTesseraServiceName});
  SetServing(internal_server_.get(), serving, {kCoordinatorServiceName});
  SetServing(health_server_.get(), serving, {kTesseraServiceName, kCoordinatorServiceName});
}

void CoordinatorServer::Shutdown() {
  if (shut_down_ || public_server_ == nullptr) return;
  shut_down_ = true;
  SetAllServing(false);
  coordinator_->BeginShutdown();
  // Running requests notice BeginShutdown within a poll interval and cancel
  // their worker calls. The servers then wait out their deadline while any
  // client keeps a connection open, so keep that short: other handlers are quick.
  coordinator_->WaitForRequestsToEnd(absl::Seconds(3));
  const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(250);
  for (grpc::Server* each : {public_server_.get(), internal_server_.get(), health_server_.get()}) {
    if (each == nullptr) continue;
    each->Shutdown(deadline);
    each->Wait();
  }
}

}  // namespace tessera
