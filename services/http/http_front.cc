// Handlers parse, call the Coordinator and write JSON; nothing here decides
// what a request may ask for. cpp-httplib (Debian's libcpp-httplib-dev, built
// with OpenSSL) serves; its TLS context is set up from the PEM text the gRPC
// listener uses. nlohmann::json dumps replace invalid UTF-8 (a token's text
// alone may be part of a character) instead of throwing.
#include "services/http/http_front.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "httplib.h"
#include "rpc/grpc_util.h"
#include "services/http/openai_api.h"

namespace tessera {
namespace {

using nlohmann::json;

constexpr char kJson[] = "application/json";
// A JSON body carries at most the longest prompt text the coordinator reads,
// escaped (2x covers \" and \\; \u escapes of control bytes can only fail).
constexpr size_t kMaxBodyBytes = static_cast<size_t>(2 * kMaxPromptTextBytes + (1 << 20));

std::string Dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

void SendError(httplib::Response& res, const absl::Status& status) {
  res.status = HttpStatusOf(status.code());
  res.set_content(Dump(ErrorJson(status)), kJson);
}

uint64_t RandomSeed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

// PEM text into the TLS context: the leaf, then any intermediates, and the key.
bool ConfigureTls(SSL_CTX& ctx, const TlsIdentity& identity) {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  BIO* certs = BIO_new_mem_buf(identity.cert_chain_pem.data(), static_cast<int>(identity.cert_chain_pem.size()));
  X509* leaf = PEM_read_bio_X509(certs, nullptr, nullptr, nullptr);
  bool ok = leaf != nullptr && SSL_CTX_use_certificate(&ctx, leaf) == 1;
  X509_free(leaf);
  while (ok) {
    X509* intermediate = PEM_read_bio_X509(certs, nullptr, nullptr, nullptr);
    if (intermediate == nullptr) break;
    if (SSL_CTX_add_extra_chain_cert(&ctx, intermediate) != 1) {  // takes ownership on success
      X509_free(intermediate);
      ok = false;
    }
  }
  BIO_free(certs);
  ERR_clear_error();  // the end of the chain reads as an error
  BIO* key_bio = BIO_new_mem_buf(identity.private_key_pem.data(), static_cast<int>(identity.private_key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  ok = ok && key != nullptr && SSL_CTX_use_PrivateKey(&ctx, key) == 1 && SSL_CTX_check_private_key(&ctx) == 1;
  EVP_PKEY_free(key);
  BIO_free(key_bio);
  return ok;
}

// One streamed completion: Generate runs on its own thread and queues SSE
// events; the response's content provider writes them as they come.
class SseStream final : public GenerateEvents {
 public:
  SseStream(Coordinator& coordinator, CompletionCall call, CompletionContext context)
      : coordinator_(coordinator), call_(std::move(call)), context_(std::move(context)) {}
  ~SseStream() override { Join(); }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  // Waits until the request is admitted (OK) or has ended; a request that
  // ended before admission with an error returns it (nothing was streamed).
  absl::Status WaitUntilStarted() {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] { return started_ || ended_; });
    return started_ ? absl::OkStatus() : end_status_;
  }

  // The content provider: writes queued events until the request ended.
  bool Pump(httplib::DataSink& sink) {
    std::deque<std::string> batch;
    bool ended = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [this] { return !events_.empty() || ended_; });
      batch.swap(events_);
      ended = ended_;
    }
    for (const std::string& event : batch) {
      if (!sink.write(event.data(), event.size())) {
        client_gone_ = true;
        return false;
      }
    }
    if (ended) sink.done();
    return true;
  }

  void ClientGone() { client_gone_ = true; }

  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  void OnStart(const std::string& request_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    context_.id = absl::StrCat("cmpl-", request_id);
    started_ = true;
    changed_.notify_all();
  }
  bool OnProgress(const PrefillProgress&) override { return !client_gone_; }
  bool OnTokens(const TokenDelta& delta) override {
    if (!delta.text.empty() || !delta.logprobs.empty()) Push(CompletionChunkJson(delta, std::nullopt, context_));
    return !client_gone_;
  }

 private:
  void Push(const json& event) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(absl::StrCat("data: ", Dump(event), "\n\n"));
    changed_.notify_all();
  }

  void Run() {
    CallerContext caller;
    caller.cancelled = [this] { return client_gone_.load(); };
    absl::StatusOr<GenerateResult> result = coordinator_.Generate(call_.request, caller, *this);
    std::lock_guard<std::mutex> lock(mu_);
    if (result.ok()) {
      if (!started_) context_.id = absl::StrCat("cmpl-", result->request_id);  // aborted while waiting
      started_ = true;
      events_.push_back(absl::StrCat("data: ", Dump(CompletionChunkJson(TokenDelta(), result->finish_reason, context_)),
                                     "\n\n"));
      if (call_.include_usage) {
        events_.push_back(absl::StrCat("data: ", Dump(UsageChunkJson(result->usage, context_)), "\n\n"));
      }
    } else if (started_) {  // failed after its 200: an error event, as vLLM sends
      events_.push_back(absl::StrCat("data: ", Dump(ErrorJson(result.status())), "\n\n"));
    }
    if (started_) events_.push_back("data: [DONE]\n\n");
    end_status_ = result.status();
    ended_ = true;
    changed_.notify_all();
  }

  Coordinator& coordinator_;
  const CompletionCall call_;
  CompletionContext context_;
  std::thread thread_;
  std::atomic<bool> client_gone_{false};
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::string> events_;
  bool started_ = false;
  bool ended_ = false;
  absl::Status end_status_;
};

}  // namespace

HttpFront::HttpFront(const HttpFrontOptions& options, Coordinator& coordinator)
    : options_(options), coordinator_(coordinator), started_at_(absl::ToUnixSeconds(absl::Now())) {}

HttpFront::~HttpFront() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpFront>> HttpFront::Start(const HttpFrontOptions& options, Coordinator& coordinator) {
  if (!options.insecure && (options.auth == nullptr || options.identity.cert_chain_pem.empty())) {
    return absl::InvalidArgumentError("the HTTP API needs TLS and bearer tokens (the public API's), or --insecure");
  }
  std::unique_ptr<HttpFront> front(new HttpFront(options, coordinator));
  if (options.insecure) {
    front->server_ = std::make_unique<httplib::Server>();
  } else {
    const TlsIdentity identity = options.identity;
    front->server_ = std::make_unique<httplib::SSLServer>(
        [identity](SSL_CTX& ctx) { return ConfigureTls(ctx, identity); });
  }
  if (!front->server_->is_valid()) {
    return absl::UnavailableError("cannot serve HTTP: the TLS certificate or key is unusable");
  }
  const int threads = std::max(1, options.threads);
  front->server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  front->server_->set_payload_max_length(kMaxBodyBytes);
  front->Route();

  int port = 0;
  const size_t colon = options.listen_address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(options.listen_address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen must be HOST:PORT. Given: '", options.listen_address, "'"));
  }
  const std::string host = options.listen_address.substr(0, colon);
  const std::string bind_host = host.size() > 1 && host.front() == '[' ? host.substr(1, host.size() - 2) : host;
  if (port == 0) {
    port = front->server_->bind_to_any_port(bind_host);
  } else if (!front->server_->bind_to_port(bind_host, port)) {
    port = -1;
  }
  if (port <= 0) return absl::UnavailableError(absl::StrCat("cannot serve HTTP on ", options.listen_address));
  front->address_ = WithPort(options.listen_address, port);
  httplib::Server* server = front->server_.get();
  front->thread_ = std::thread([server] { server->listen_after_bind(); });
  return front;
}

void HttpFront::Stop() {
  if (server_ == nullptr) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpFront::Route() {
  httplib::Server& server = *server_;
  // Every path but /health needs a token when the coordinator has tokens.
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.insecure || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    std::optional<absl::string_view> authorization;
    const std::string header = req.get_header_value("Authorization");
    if (req.has_header("Authorization")) authorization = header;
    if (absl::Status status = options_.auth->Authorize(authorization); !status.ok()) {
      SendError(res, status);
      res.set_header("WWW-Authenticate", "Bearer");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Anything answered without a body (unknown paths, a body too large) gets one.
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& req, httplib::Response& res) -> httplib::Server::HandlerResponse {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        const absl::StatusCode code =
            res.status == 404 ? absl::StatusCode::kNotFound : absl::StatusCode::kInvalidArgument;
        const std::string message = res.status == 404
                                        ? absl::StrCat("no route ", req.method, " ", req.path)
                                        : absl::StrCat("the request failed with HTTP status ", res.status);
        const int status = res.status;
        SendError(res, absl::Status(code, message));
        res.status = status;  // keep httplib's own code (413, 405, ...)
        return httplib::Server::HandlerResponse::Handled;
      }));
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    SendError(res, absl::InternalError("the server failed to answer this request"));
  });

  server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const int32_t ready = coordinator_.GetModelInfo().workers_ready;
    if (ready == 0) return SendError(res, absl::UnavailableError("no worker is ready"));
    res.set_content(Dump(json{{"status", "ok"}, {"workers_ready", ready}}), kJson);
  });

  server.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const ModelInfo info = coordinator_.GetModelInfo();
    json model = {{"id", options_.model_name}, {"object", "model"}, {"created", started_at_}, {"owned_by", "tessera"}};
    if (info.max_context_tokens > 0) model["max_model_len"] = info.max_context_tokens;
    res.set_content(Dump(json{{"object", "list"}, {"data", json::array({std::move(model)})}}), kJson);
  });

  server.Post("/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
    SendError(res, absl::NotFoundError(
                       "chat completions are not supported: chat templates need a Jinja engine, and none for C++ is "
                       "packaged in Debian 12; apply the model's chat template yourself and POST /v1/completions"));
  });

  server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<CompletionCall> call = ParseCompletionRequest(req.body, options_.model_name, RandomSeed());
    if (!call.ok()) return SendError(res, call.status());
    if (req.has_header("X-Request-Id")) call->request.request_id = req.get_header_value("X-Request-Id");
    CompletionContext context;
    context.created = absl::ToUnixSeconds(absl::Now());
    context.model = options_.model_name;
    const bool keep_special = call->request.keep_special_tokens;
    context.token_text = [this, keep_special](int32_t id) {
      absl::StatusOr<std::string> text = coordinator_.Detokenize(DetokenizeRequest{{id}, keep_special});
      return text.ok() ? *text : absl::StrCat("token_id:", id);
    };
    if (!call->stream) {
      IgnoreGenerateEvents events;
      absl::StatusOr<GenerateResult> result = coordinator_.Generate(call->request, CallerContext(), events);
      if (!result.ok()) return SendError(res, result.status());
      context.id = absl::StrCat("cmpl-", result->request_id);
      res.set_content(Dump(CompletionJson(*result, context)), kJson);
      return;
    }
    auto stream = std::make_shared<SseStream>(coordinator_, *std::move(call), std::move(context));
    stream->Start();
    if (absl::Status started = stream->WaitUntilStarted(); !started.ok()) {
      stream->Join();
      return SendError(res, started);
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [stream](size_t, httplib::DataSink& sink) { return stream->Pump(sink); },
        [stream](bool success) {
          if (!success) stream->ClientGone();
          stream->Join();
        });
  });
}

}  // namespace tessera
