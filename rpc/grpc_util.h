// gRPC glue shared by every Tessera process: status conversion in both
// directions, channels and servers with explicit message-size limits (long
// prompts and K/V blocks are large), and the standard health and reflection
// services on every server. Who may connect: grpc_security.h.
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

// A channel to a cluster member's internal API with the size limits and this
// process's internal security (grpc_security.h: mutual TLS once the process
// set its cluster identity, plaintext before, as in in-process tests). The
// same as MakeInternalChannel; clients of the public API pass a
// ChannelSecurity to MakeChannel(address, security) instead.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// A ServerBuilder for the internal API: the size limits, grpc.health.v1 and
// reflection, this process's internal security. Call before adding services;
// `selected_port` receives the bound port. Other listeners pass a
// ServerSecurity (grpc_security.h).
void ConfigureServerBuilder(grpc::ServerBuilder& builder, const std::string& listen_address, int* selected_port);

// "127.0.0.1:0" + port 43210 → "127.0.0.1:43210".
std::string WithPort(const std::string& listen_address, int port);

}  // namespace tessera
