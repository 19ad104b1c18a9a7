// The OpenAI-compatible HTTP front in process, over TLS with bearer tokens
// (throwaway certificates from tools/cluster/local_tls.h), in front of the
// real coordinator and fake workers: 401 without a good token (and /health
// open), completions unary and streamed as server-sent events ending with
// "data: [DONE]", stop strings and logprobs in OpenAI's shapes, 400s quoting
// the limits, 404s (model, chat, path), 429 for a full cluster (unary and
// stream), and Abort (by the X-Request-Id) of an HTTP stream.
#include "services/http/http_front.h"

#include <gmock/gmock.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "coordinator/served_model.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "rpc/grpc_util.h"
#include "services/coordinator_service.h"
#include "tests/coordinator/fake_text_model.h"
#include "tests/coordinator/fake_worker.h"
#include "tools/cluster/local_tls.h"

namespace tessera {
namespace {

using ::nlohmann::json;
using ::tessera::testing::FakeTextIds;
using ::tessera::testing::FakeTextModel;
using ::tessera::testing::FakeWorker;
using ::tessera::testing::FakeWorkerScript;
using ::tessera::testing::WaitUntil;
using ::testing::HasSubstr;

constexpr char kModelName[] = "tiny-test";

class HttpFrontTest : public ::testing::Test {
 protected:
  void Start(FakeWorkerScript script = {}, int32_t max_queued = 0) {
    // One directory per process: ctest runs these tests in parallel.
    absl::StatusOr<LocalTlsFiles> tls = GenerateLocalTls(absl::StrCat(::testing::TempDir(), "/http_front_tls_", getpid()));
    ASSERT_TRUE(tls.ok()) << tls.status();
    tls_ = *tls;
    ServedModel model = FakeTextModel();
    CoordinatorOptions options;
    options.health_interval = absl::Milliseconds(50);
    options.cancel_poll_interval = absl::Milliseconds(10);
    options.max_queued_requests = max_queued;
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
        CoordinatorServer::Start("127.0.0.1:0", std::move(model), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    HttpFrontOptions http;
    http.listen_address = "127.0.0.1:0";
    ASSERT_TRUE(ReadFile(tls_.cert, http.identity.cert_chain_pem));
    ASSERT_TRUE(ReadFile(tls_.key, http.identity.private_key_pem));
    absl::StatusOr<std::shared_ptr<BearerTokenAuth>> auth = BearerTokenAuth::FromFile(tls_.tokens);
    ASSERT_TRUE(auth.ok()) << auth.status();
    http.auth = *auth;
    http.model_name = kModelName;
    absl::StatusOr<std::unique_ptr<HttpFront>> front = HttpFront::Start(http, server_->coordinator());
    ASSERT_TRUE(front.ok()) << front.status();
    front_ = *std::move(front);
    script.vocab_size = 512;
    if (script.tokens == FakeWorkerScript().tokens) script.tokens = FakeTextIds("Once upon a time STOP there was");
    worker_ = FakeWorker::Start(script);
    ASSERT_NE(worker_, nullptr);
    ASSERT_TRUE(worker_->RegisterWith(server_->internal_address()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    if (front_ != nullptr) front_->Stop();
    worker_.reset();
  }

  static bool ReadFile(const std::string& path, std::string& out) {
    std::ifstream in(path);
    std::stringstream contents;
    contents << in.rdbuf();
    out = contents.str();
    return in.good() || in.eof();
  }

  std::unique_ptr<httplib::SSLClient> Client(bool with_token = true) {
    const std::string& address = front_->address();
    const int port = std::stoi(address.substr(address.rfind(':') + 1));
    auto client = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    client->set_ca_cert_path(tls_.ca_cert.c_str());
    client->enable_server_certificate_verification(true);
    client->set_read_timeout(20, 0);
    if (with_token) client->set_bearer_token_auth(tls_.token.c_str());
    return client;
  }

  httplib::Result Post(const json& body, bool with_token = true, const httplib::Headers& headers = {}) {
    return Client(with_token)->Post("/v1/completions", headers, body.dump(), "application/json");
  }

  // The data lines of a server-sent event stream, in order.
  static std::vector<std::string> Events(const std::string& body) {
    std::vector<std::string> events;
    std::stringstream lines(body);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("data: ", 0) == 0) events.push_back(line.substr(6));
    }
    return events;
  }

  static void ExpectError(const httplib::Result& result, int status, const std::string& fragment) {
    ASSERT_TRUE(result) << httplib::to_string(result.error());
    EXPECT_EQ(result->status, status) << result->body;
    const json body = json::parse(result->body, nullptr, false);
    ASSERT_TRUE(body.contains("error")) << result->body;
    EXPECT_THAT(body["error"]["message"].get<std::string>(), HasSubstr(fragment));
    EXPECT_TRUE(body["error"].contains("type"));
  }

  LocalTlsFiles tls_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<HttpFront> front_;
  std::unique_ptr<FakeWorker> worker_;
};

json Completion(int max_tokens) {
  return {{"model", kModelName}, {"prompt", "Hello"}, {"max_tokens", max_tokens}, {"temperature", 0}};
}

TEST_F(HttpFrontTest, TokensAreRequiredExceptForHealth) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ExpectError(Post(Completion(3), /*with_token=*/false), 401, "missing bearer token");
  auto wrong = Client(false);
  wrong->set_bearer_token_auth("not-the-token-0123456789");
  ExpectError(wrong->Get("/v1/models"), 401, "unknown bearer token");
  auto health = Client(false)->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto models = Client()->Get("/v1/models");
  ASSERT_TRUE(models);
  ASSERT_EQ(models->status, 200) << models->body;
  const json list = json::parse(models->body);
  EXPECT_EQ(list["object"], "list");
  EXPECT_EQ(list["data"][0]["id"], kModelName);
}

TEST_F(HttpFrontTest, UnaryAndStreamedCompletionsWithAStopString) {
  ASSERT_NO_FATAL_FAILURE(Start());
  json request = Completion(20);
  request["stop"] = {" STOP", "never"};
  request["stream_options"] = {{"include_usage", true}};
  auto unary = Post(request);
  ASSERT_TRUE(unary);
  ASSERT_EQ(unary->status, 200) << unary->body;
  const json body = json::parse(unary->body);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["model"], kModelName);
  EXPECT_THAT(body["id"].get<std::string>(), HasSubstr("cmpl-"));
  EXPECT_EQ(body["choices"][0]["text"], "Once upon a time");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(body["choices"][0]["logprobs"].is_null());
  const int completion_tokens = body["usage"]["completion_tokens"];
  EXPECT_GT(completion_tokens, 0);
  EXPECT_EQ(body["usage"]["prompt_tokens"].get<int>() + completion_tokens, body["usage"]["total_tokens"].get<int>());

  request["stream"] = true;
  auto streamed = Post(request);
  ASSERT_TRUE(streamed);
  ASSERT_EQ(streamed->status, 200) << streamed->body;
  EXPECT_THAT(streamed->get_header_value("Content-Type"), HasSubstr("text/event-stream"));
  const std::vector<std::string> events = Events(streamed->body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  json finish_reason;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    if (chunk["choices"].empty()) {  // the usage chunk, last before [DONE]
      EXPECT_EQ(i + 2, events.size());
      EXPECT_EQ(chunk["usage"]["completion_tokens"], completion_tokens);
      continue;
    }
    text += chunk["choices"][0]["text"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish_reason = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, "Once upon a time");
  EXPECT_EQ(finish_reason, "stop");
}

TEST_F(HttpFrontTest, LogprobsInOpenAIsShape) {
  ASSERT_NO_FATAL_FAILURE(Start());
  json request = Completion(3);
  request["logprobs"] = 2;
  request["skip_special_tokens"] = false;  // the fake's alternatives are ids 0 and 1: special tokens, spelled
  auto result = Post(request);
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  const json logprobs = json::parse(result->body)["choices"][0]["logprobs"];
  ASSERT_EQ(logprobs["tokens"].size(), 3u);
  ASSERT_EQ(logprobs["token_logprobs"].size(), 3u);
  EXPECT_DOUBLE_EQ(logprobs["token_logprobs"][1].get<double>(), -0.5);  // the fake's -(i + 1) / 4
  ASSERT_EQ(logprobs["top_logprobs"].size(), 3u);
  EXPECT_EQ(logprobs["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(logprobs["text_offset"][0], 0);
  std::string joined;
  for (const json& token : logprobs["tokens"]) joined += token.get<std::string>();
  EXPECT_EQ(joined, json::parse(result->body)["choices"][0]["text"].get<std::string>());
}

TEST_F(HttpFrontTest, BadRequestsAre400sQuotingTheLimit) {
  ASSERT_NO_FATAL_FAILURE(Start());
  json n = Completion(3);
  n["n"] = 2;
  ExpectError(Post(n), 400, "n must be 1 (this server returns one completion per request). Given: 2");
  json stops = Completion(3);
  stops["stop"] = json::array();
  for (int i = 0; i < 17; ++i) stops["stop"].push_back("s" + std::to_string(i));
  ExpectError(Post(stops), 400, "stop_strings must have at most 16 strings. Given: 17");
  json bias = Completion(3);
  for (int i = 0; i < 1025; ++i) bias["logit_bias"][std::to_string(i % 512 + 512 * (i / 512))] = 1;
  ExpectError(Post(bias), 400, "logit_bias must have at most 1024 entries. Given: 1025");
  json penalty = Completion(3);
  penalty["presence_penalty"] = 3;
  ExpectError(Post(penalty), 400, "presence_penalty must be in [-2, 2]. Given: 3");
  json temperature = Completion(3);
  temperature["temperature"] = "hot";
  ExpectError(Post(temperature), 400, "temperature must be a number");
  ExpectError(Client()->Post("/v1/completions", "{not json", "application/json"), 400, "must be JSON");
  json too_many = Completion(5000);
  ExpectError(Post(too_many), 400, "max_new_tokens must be <= 4096. Given: 5000");
}

TEST_F(HttpFrontTest, NotFoundsSayWhat) {
  ASSERT_NO_FATAL_FAILURE(Start());
  json other = Completion(3);
  other["model"] = "gpt-4";
  ExpectError(Post(other), 404, "does not exist; this server serves 'tiny-test'");
  ExpectError(Client()->Post("/v1/chat/completions", R"({"model":"tiny-test","messages":[]})", "application/json"), 404,
              "chat templates");
  ExpectError(Client()->Get("/v2/anything"), 404, "no route GET /v2/anything");
}

TEST_F(HttpFrontTest, AFullClusterIs429ForUnaryAndStreams) {
  FakeWorkerScript script;
  script.capacity_tokens = 30;
  script.hold_last_shard = true;
  ASSERT_NO_FATAL_FAILURE(Start(script));
  std::thread holder([&] {
    auto result = Post(Completion(20));
    EXPECT_TRUE(result && result->status == 200);
  });
  ASSERT_TRUE(WaitUntil([&] { return worker_->RunningShards() == 1; }));
  ExpectError(Post(Completion(20)), 429, "");
  json stream = Completion(20);
  stream["stream"] = true;
  ExpectError(Post(stream), 429, "");
  worker_->Release();
  holder.join();
}

TEST_F(HttpFrontTest, AbortEndsAnHttpStreamByItsRequestId) {
  FakeWorkerScript script;
  script.hold_last_shard = true;
  ASSERT_NO_FATAL_FAILURE(Start(script));
  json request = Completion(20);
  request["stream"] = true;
  std::optional<httplib::Result> result;
  std::thread client([&] { result.emplace(Post(request, true, {{"X-Request-Id", "http-7"}})); });
  ASSERT_TRUE(WaitUntil([&] { return worker_->RunningShards() == 1; }));
  ASSERT_TRUE(server_->coordinator().Abort("http-7").ok());
  client.join();
  ASSERT_TRUE(result.has_value() && *result);
  ASSERT_EQ((*result)->status, 200);
  const std::vector<std::string> events = Events((*result)->body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(json::parse(events[events.size() - 2])["choices"][0]["finish_reason"], "abort");
  EXPECT_EQ(json::parse(events[0])["id"], "cmpl-http-7");
}

}  // namespace
}  // namespace tessera
