// Thin handlers: convert, delegate, convert back. Every decision lives in
// coordinator/.
#include "services/coordinator_service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "grpcpp/health_check_service_interface.h"
#include "rpc/grpc_util.h"
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

void SetServing(grpc::Server& server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  health->SetServingStatus(kTesseraServiceName, serving);
  health->SetServingStatus(kCoordinatorServiceName, serving);
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

grpc::Status WorkerRegistrationService::RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest* request,
                                                       v1::RegisterWorkerResponse* response) {
  absl::StatusOr<int> workers_ready = coordinator_.RegisterWorker(request->address());
  if (!workers_ready.ok()) return ToGrpcStatus(workers_ready.status());
  response->set_workers_ready(*workers_ready);
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(const std::string& listen_address,
                                                                            ServedModel model,
                                                                            const CoordinatorOptions& options) {
  std::unique_ptr<CoordinatorServer> server(new CoordinatorServer());
  server->coordinator_ = std::make_unique<Coordinator>(std::move(model), options);
  server->tessera_service_ = std::make_unique<TesseraService>(*server->coordinator_);
  server->registration_service_ = std::make_unique<WorkerRegistrationService>(*server->coordinator_);

  grpc::ServerBuilder builder;
  int port = 0;
  ConfigureServerBuilder(builder, listen_address, &port);
  builder.RegisterService(server->tessera_service_.get());
  builder.RegisterService(server->registration_service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen_address));
  }
  server->address_ = WithPort(listen_address, port);
  SetServing(*server->server_, true);
  server->coordinator_->StartHealthChecks();
  return server;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

void CoordinatorServer::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  SetServing(*server_, false);
  coordinator_->BeginShutdown();
  // Running requests notice BeginShutdown within a poll interval and cancel
  // their worker calls. The server then waits out its deadline while any
  // client keeps a connection open, so keep that short: other handlers are quick.
  coordinator_->WaitForRequestsToEnd(absl::Seconds(3));
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(250));
  server_->Wait();
}

}  // namespace tessera
