// gRPC glue shared by every Tessera process: status conversion in both
// directions, channels and servers with explicit message-size limits (long
// prompts and K/V blocks are large), and the standard health and reflection
// services on every server.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"

namespace tessera {

// Large enough for a 1M-token prompt's ids and for K/V blocks of long shards.
inline constexpr int kMaxGrpcMessageBytes = 1 << 30;

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// An insecure channel (127.0.0.1 or a cluster network) with the size limits.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// A ServerBuilder with the size limits, grpc.health.v1 and reflection enabled.
// Call before adding services; `selected_port` receives the bound port.
void ConfigureServerBuilder(grpc::ServerBuilder& builder, const std::string& listen_address, int* selected_port);

// "127.0.0.1:0" + port 43210 → "127.0.0.1:43210".
std::string WithPort(const std::string& listen_address, int port);

}  // namespace tessera
