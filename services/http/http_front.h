// The coordinator's OpenAI-compatible HTTP face (`--http-listen`), beside
// its gRPC API and calling the same Coordinator: POST /v1/completions
// (unary, or server-sent events ending with "data: [DONE]"), GET /v1/models,
// GET /health; /v1/chat/completions answers 404 (no chat templates: no
// Jinja engine for C++ is packaged in Debian 12). Security as the gRPC public
// API's: TLS with the same certificate and the same bearer-token file
// (checked on every path but /health), or plaintext only when the
// coordinator runs --insecure. Errors are OpenAI's JSON error shape with
// the matching HTTP status (openai_api.h).
//
// A stream answers its HTTP status only once the request is admitted (or
// has failed), so a full cluster is a 429 and a bad field a 400 for streams
// too: the request runs on a thread of its own, and the response's chunks
// are fed from what it produces.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "coordinator/coordinator.h"
#include "rpc/grpc_security.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace tessera {

struct HttpFrontOptions {
  std::string listen_address;  // HOST:PORT (port 0: any free port)
  bool insecure = false;       // plaintext, no tokens (the coordinator's --insecure)
  TlsIdentity identity;        // the public API's certificate and key (required unless insecure)
  std::shared_ptr<BearerTokenAuth> auth;  // the public API's tokens (required unless insecure)
  std::string model_name;      // the model id /v1/models lists and requests may name
  int threads = 64;            // connections served at once (each stream holds one)
};

class HttpFront {
 public:
  // Binds and starts serving; UNAVAILABLE when the address cannot be bound
  // or the TLS credentials are unusable.
  static absl::StatusOr<std::unique_ptr<HttpFront>> Start(const HttpFrontOptions& options, Coordinator& coordinator);
  HttpFront(const HttpFront&) = delete;
  HttpFront& operator=(const HttpFront&) = delete;
  ~HttpFront();  // Stop()

  // HOST:PORT as bound.
  const std::string& address() const { return address_; }
  // Stops accepting and waits for the handlers to return (streams end when
  // the coordinator shuts down). Idempotent.
  void Stop();

 private:
  HttpFront(const HttpFrontOptions& options, Coordinator& coordinator);
  void Route();

  const HttpFrontOptions options_;
  Coordinator& coordinator_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string address_;
  int64_t started_at_ = 0;  // Unix seconds: the model's "created"
};

}  // namespace tessera
