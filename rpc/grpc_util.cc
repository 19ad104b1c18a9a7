// Status mapping keeps Abseil's codes (they are gRPC's codes by number).
#include "rpc/grpc_util.h"

#include "rpc/grpc_security.h"

namespace tessera {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) { return MakeInternalChannel(address); }

void ConfigureServerBuilder(grpc::ServerBuilder& builder, const std::string& listen_address, int* selected_port) {
  ConfigureServerBuilder(builder, listen_address, GetInternalSecurity().server, selected_port);
}

std::string WithPort(const std::string& listen_address, int port) {
  const size_t colon = listen_address.rfind(':');
  return (colon == std::string::npos ? listen_address : listen_address.substr(0, colon)) + ":" + std::to_string(port);
}

}  // namespace tessera
