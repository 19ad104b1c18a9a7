// Who may talk to whom, and how, in one place. Every gRPC listener and
// channel of Tessera is built from one of two security configs:
//
//   ServerSecurity  a listener: TLS with this server's certificate; with a
//                   client CA, mutual TLS (clients must present a certificate
//                   that CA signed, or the handshake fails); with an auth
//                   processor, every call's metadata is checked too (bearer
//                   tokens on the public API).
//   ChannelSecurity a channel: TLS trusting a CA (empty: the system's roots),
//                   optionally presenting a client certificate (mutual TLS)
//                   and sending a bearer token on every call.
//
// Both are plaintext only when `insecure` is set, which callers do only on an
// explicit --insecure (tests and `tessera local` on loopback).
//
// The internal API (coordinator <-> workers, worker <-> worker) uses one
// cluster identity per process: a certificate and key signed by the cluster
// CA, presented by both ends and verified by both. A process sets it once at
// start (SetInternalSecurity); MakeInternalChannel and the internal server
// builder (grpc_util.h) take it from there, so code below tools/ that dials a
// worker needs no security parameter. Until it is set it is plaintext, which
// is what in-process tests get.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/auth_metadata_processor.h"

namespace tessera {

// PEM text (never a path), as loaded from files.
struct TlsIdentity {
  std::string cert_chain_pem;   // this end's certificate, then any intermediates
  std::string private_key_pem;  // its key
};

struct ServerSecurity {
  bool insecure = false;     // plaintext: no TLS, no checks
  TlsIdentity identity;      // required unless insecure
  std::string client_ca_pem;  // non-empty: require and verify client certificates signed by it (mutual TLS)
  std::shared_ptr<grpc::AuthMetadataProcessor> auth;  // non-null: checks every call (e.g. BearerTokenAuth)

  static ServerSecurity Insecure();
};

struct ChannelSecurity {
  bool insecure = false;    // plaintext
  std::string root_ca_pem;  // CA the server's certificate must chain to; empty: the system's roots
  TlsIdentity identity;     // client certificate for mutual TLS; empty: none
  // Non-empty: the name the server's certificate must carry, instead of the
  // host part of the address dialled (all cluster members share one name).
  std::string server_name;
  std::string bearer_token;  // non-empty: "authorization: Bearer <token>" on every call (TLS only)

  static ChannelSecurity Insecure();
};

// The cluster identity of this process for the internal API.
struct InternalSecurity {
  ServerSecurity server;
  ChannelSecurity channel;
};

// Reads a PEM file; `what` names it in errors ("the cluster certificate").
absl::StatusOr<std::string> ReadPemFile(const std::string& path, absl::string_view what);

// Mutual TLS with the cluster CA: the server requires client certificates
// that `ca_path` signed, the channel presents `cert_path` and trusts only
// `ca_path`. `server_name` as in ChannelSecurity (empty: the dialled host).
absl::StatusOr<InternalSecurity> LoadClusterSecurity(const std::string& cert_path, const std::string& key_path,
                                                     const std::string& ca_path, const std::string& server_name);

// Sets this process's internal security; call once at start, before any
// internal channel or server is made. Not thread-safe against those.
void SetInternalSecurity(InternalSecurity security);
const InternalSecurity& GetInternalSecurity();

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const ServerSecurity& security);
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const ChannelSecurity& security);

// A channel with the message-size limits and quick reconnects.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const ChannelSecurity& security);
// A channel to a cluster member (coordinator's internal API or a worker),
// with GetInternalSecurity().channel.
std::shared_ptr<grpc::Channel> MakeInternalChannel(const std::string& address);

// ServerBuilder with the size limits, health and reflection, listening on
// `listen_address` with `security`. `selected_port` receives the bound port.
void ConfigureServerBuilder(grpc::ServerBuilder& builder, const std::string& listen_address,
                            const ServerSecurity& security, int* selected_port);

// A plaintext server that offers grpc.health.v1 only, on HOST:PORT (0: any
// free port), for probes that cannot speak TLS (kubelet's gRPC probes). Its
// statuses are set like any server's (GetHealthCheckService()). Reveals
// nothing but whether the process serves.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartHealthOnlyServer(const std::string& host, int port,
                                                                     int* selected_port);

// Bearer tokens from a file: one per line; blank lines and lines starting
// with '#' are ignored, surrounding whitespace is trimmed. A token is 16 to
// 4096 printable ASCII characters without spaces. Errors name the line,
// never the token.
absl::StatusOr<std::vector<std::string>> ParseBearerTokens(absl::string_view text);

// Checks "authorization: Bearer <token>" on every call against the tokens of
// a file, re-read when the file changes (checked at most once a second), so
// tokens rotate without a restart. A missing or unknown token fails the call
// UNAUTHENTICATED; grpc.health.v1 stays open. The token is consumed: handlers
// never see it, and it is never logged.
class BearerTokenAuth final : public grpc::AuthMetadataProcessor {
 public:
  // Reads the file now; an unreadable file or one without tokens is an error.
  static absl::StatusOr<std::shared_ptr<BearerTokenAuth>> FromFile(const std::string& path);

  // The same check for any protocol (the coordinator's HTTP front):
  // `authorization` is the header's value, absent when not sent. OK, or
  // UNAUTHENTICATED saying why (never quoting the token).
  absl::Status Authorize(std::optional<absl::string_view> authorization);

  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata, OutputMetadata* response_metadata) override;

  size_t token_count() const;

 private:
  struct FileStamp {
    long long inode = 0, size = 0, mtime_ns = 0;
    bool operator==(const FileStamp& other) const {
      return inode == other.inode && size == other.size && mtime_ns == other.mtime_ns;
    }
  };
  explicit BearerTokenAuth(std::string path) : path_(std::move(path)) {}
  void ReloadIfChanged();
  bool Known(absl::string_view token) const;

  const std::string path_;
  mutable std::mutex mu_;
  std::vector<std::string> tokens_;
  FileStamp stamp_;
  std::chrono::steady_clock::time_point last_check_;
};

}  // namespace tessera
