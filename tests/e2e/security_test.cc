// The attack that found the hole, replayed against `tessera local --tls`
// (real coordinator and 3 workers on 127.0.0.1, certificates and token made
// by openssl): an unauthenticated fake worker once registered on the public
// port, was given shards of prompts and forged tokens. Now: the public port
// offers no RegisterWorker, the internal port refuses anyone without a
// certificate of the cluster CA, the fake never sees a shard, and clients
// need TLS and a known token.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rpc/grpc_security.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tessera/v1/worker.grpc.pb.h"
#include "tests/coordinator/fake_worker.h"
#include "tests/e2e/health_client.h"
#include "tools/cluster/child_process.h"
#include "tools/cluster/local_tls.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr char kSecretPrompt[] = "The launch code is 0000; tell nobody.";

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// The text after `prefix` on its line of `text`, up to `end` (or the line's end).
std::string After(const std::string& text, const std::string& prefix, char end = '\n') {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return "";
  const size_t begin = at + prefix.size();
  const size_t stop = std::min(text.find(end, begin), text.find('\n', begin));
  return text.substr(begin, stop - begin);
}

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char pattern[] = "/tmp/tessera-security-e2e.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = new std::string(pattern);
    const std::string out_path = *dir_ + "/local.out";
    const int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    absl::StatusOr<std::unique_ptr<ChildProcess>> local = ChildProcess::Spawn(
        {.argv = {TESSERA_BINARY, "local", "--workers", "3", "--model",
                  std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/bamba-tiny", "--tokenizer",
                  std::string(TESSERA_TEST_DATA_DIR) + "/tokenizers/bpe512-gpt2split/tokenizer.json", "--port", "0",
                  "--min-shard-tokens", "4", "--memory-budget-mb", "64", "--tls", "--tls-dir", *dir_ + "/tls",
                  "--log-file", *dir_ + "/children.log"},
         .stdout_fd = out_fd});
    close(out_fd);
    ASSERT_TRUE(local.ok()) << local.status();
    local_ = local->release();
    // A certificate of another CA for the attacks, made now: running openssl
    // (a fork) once this process's gRPC is busy would disturb its connections.
    absl::StatusOr<LocalTlsFiles> rogue = GenerateLocalTls(*dir_ + "/rogue");
    ASSERT_TRUE(rogue.ok()) << rogue.status();
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    while (!absl::StrContains(ReadFileOrEmpty(out_path), "Ctrl-C stops")) {
      ASSERT_TRUE(local_->Poll()) << "tessera local exited:\n"
                                  << ReadFileOrEmpty(out_path) << ReadFileOrEmpty(*dir_ + "/children.log");
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << ReadFileOrEmpty(*dir_ + "/children.log");
      std::this_thread::sleep_for(50ms);
    }
    const std::string out = ReadFileOrEmpty(out_path);
    address_ = new std::string(After(out, "local cluster: coordinator on ", ','));
    internal_address_ = new std::string(After(out, "internal API (workers register here): "));
    ASSERT_FALSE(address_->empty()) << out;
    ASSERT_FALSE(internal_address_->empty()) << out;
    ASSERT_THAT(out, ::testing::Not(HasSubstr("INSECURE")));
  }

  static void TearDownTestSuite() {
    const ::testing::TestSuite* suite = ::testing::UnitTest::GetInstance()->current_test_suite();
    if (dir_ != nullptr && suite != nullptr && suite->Failed()) {
      std::cerr << "---- the cluster's output (" << *dir_ << "/children.log) ----\n"
                << ReadFileOrEmpty(*dir_ + "/children.log");
    }
    if (local_ != nullptr) {
      kill(local_->pid(), SIGINT);
      for (int i = 0; i < 500 && local_->Poll(); ++i) std::this_thread::sleep_for(20ms);
      EXPECT_FALSE(local_->running()) << "tessera local did not stop on SIGINT";
      if (!local_->running()) EXPECT_EQ(DescribeWaitStatus(*local_->wait_status()), "exited with status 0");
      delete local_;  // kills what is left
      local_ = nullptr;
    }
    if (dir_ != nullptr) std::filesystem::remove_all(*dir_);
    delete dir_;
    delete address_;
    delete internal_address_;
  }

  static std::string Tls(const std::string& name) { return *dir_ + "/tls/" + name; }
  static std::string Pem(const std::string& name) { return *ReadPemFile(Tls(name), name); }
  // The certificate and key of a CA that is not the cluster's.
  static TlsIdentity Rogue() {
    return {*ReadPemFile(*dir_ + "/rogue/tls.crt", "rogue"), *ReadPemFile(*dir_ + "/rogue/tls.key", "rogue")};
  }
  static std::string Token() {
    return std::string(*ParseBearerTokens(ReadFileOrEmpty(Tls("tokens")))->begin());
  }

  // TLS trusting the cluster CA, with `token` (empty: none).
  static ChannelSecurity Client(const std::string& token) {
    ChannelSecurity security;
    security.root_ca_pem = Pem("ca.crt");
    security.bearer_token = token;
    return security;
  }

  static grpc::Status GenerateText(const ChannelSecurity& security, v1::GenerateResponse* response) {
    auto stub = v1::Tessera::NewStub(MakeChannel(*address_, security));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 60s);
    v1::GenerateRequest request;
    request.set_prompt_text(kSecretPrompt);
    request.mutable_stopping()->set_max_new_tokens(4);
    request.mutable_stopping()->set_ignore_eos(true);
    return stub->Generate(&context, request, response);
  }

  static v1::ServerInfo ServerInfo() {
    auto stub = v1::Tessera::NewStub(MakeChannel(*address_, Client(Token())));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::ServerInfo info;
    const grpc::Status status = stub->GetServerInfo(&context, v1::GetServerInfoRequest(), &info);
    EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
    return info;
  }

  static grpc::StatusCode RegisterAt(const std::string& address, const ChannelSecurity& security,
                                     const std::string& worker_address) {
    auto stub = v1::Coordinator::NewStub(MakeChannel(address, security));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::RegisterWorkerRequest request;
    request.set_address(worker_address);
    v1::RegisterWorkerResponse response;
    return stub->RegisterWorker(&context, request, &response).error_code();
  }

  static std::string* dir_;
  static ChildProcess* local_;
  static std::string* address_;
  static std::string* internal_address_;
};
std::string* SecurityTest::dir_ = nullptr;
ChildProcess* SecurityTest::local_ = nullptr;
std::string* SecurityTest::address_ = nullptr;
std::string* SecurityTest::internal_address_ = nullptr;

TEST_F(SecurityTest, WithoutATokenUnauthenticated) {
  v1::GenerateResponse response;
  const grpc::Status status = GenerateText(Client(""), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("missing bearer token"));
}

TEST_F(SecurityTest, WithAWrongTokenUnauthenticated) {
  v1::GenerateResponse response;
  const grpc::Status status = GenerateText(Client("not-the-token-0123456789abcdef"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_EQ(status.error_message(), "unknown bearer token");
}

TEST_F(SecurityTest, WithTheTokenGeneratesOverTls) {
  v1::GenerateResponse response;
  const grpc::Status status = GenerateText(Client(Token()), &response);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(response.token_ids_size(), 4);
  EXPECT_GE(response.shards(), 2) << "the prompt spans workers, so their mutual TLS carried it";
  EXPECT_THAT(ReadFileOrEmpty(*dir_ + "/children.log"), ::testing::Not(HasSubstr(Token())))
      << "the token is never logged";
}

TEST_F(SecurityTest, APlaintextClientCannotTalkToEitherPort) {
  v1::GenerateResponse response;
  EXPECT_EQ(GenerateText(ChannelSecurity::Insecure(), &response).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(RegisterAt(*internal_address_, ChannelSecurity::Insecure(), "127.0.0.1:1"), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityTest, ThePublicPortDoesNotOfferRegisterWorker) {
  EXPECT_EQ(RegisterAt(*address_, Client(Token()), "127.0.0.1:1"), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(SecurityTest, InternalPortsRefuseClientsWithoutAClusterCertificate) {
  ChannelSecurity no_certificate;
  no_certificate.root_ca_pem = Pem("ca.crt");  // the CA certificate is no secret
  ChannelSecurity other_ca = no_certificate;
  other_ca.identity = Rogue();
  ChannelSecurity member = no_certificate;
  member.identity = {Pem("tls.crt"), Pem("tls.key")};

  EXPECT_EQ(RegisterAt(*internal_address_, no_certificate, "127.0.0.1:1"), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(RegisterAt(*internal_address_, other_ca, "127.0.0.1:1"), grpc::StatusCode::UNAVAILABLE);

  // Workers: the same, and the cluster's certificate gets through.
  const v1::ServerInfo info = ServerInfo();
  ASSERT_EQ(info.workers_size(), 3);
  for (const v1::WorkerInfo& worker : info.workers()) {
    const auto status_with = [&](const ChannelSecurity& security) {
      auto stub = v1::Worker::NewStub(MakeChannel(worker.address(), security));
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + 5s);
      v1::WorkerStatus status;
      return stub->GetStatus(&context, v1::GetWorkerStatusRequest(), &status).error_code();
    };
    EXPECT_EQ(status_with(member), grpc::StatusCode::OK) << worker.address();
    EXPECT_EQ(status_with(no_certificate), grpc::StatusCode::UNAVAILABLE) << worker.address();
    EXPECT_EQ(status_with(other_ca), grpc::StatusCode::UNAVAILABLE) << worker.address();
    EXPECT_EQ(status_with(ChannelSecurity::Insecure()), grpc::StatusCode::UNAVAILABLE) << worker.address();
  }
}

// The original attack: a worker of the attacker's tries every door, then the
// user sends a text prompt. It must never be given a shard.
TEST_F(SecurityTest, AFakeWorkerCannotRegisterAndIsNeverGivenAShard) {
  std::unique_ptr<testing::FakeWorker> fake = testing::FakeWorker::Start({.capacity_tokens = 1 << 20});
  ASSERT_NE(fake, nullptr);
  ChannelSecurity other_ca;
  other_ca.root_ca_pem = Pem("ca.crt");
  other_ca.identity = Rogue();

  EXPECT_FALSE(fake->RegisterWith(*address_)) << "plaintext, public port (as in the attack)";
  EXPECT_FALSE(fake->RegisterWith(*internal_address_)) << "plaintext, internal port";
  EXPECT_EQ(RegisterAt(*address_, Client(Token()), fake->address()), grpc::StatusCode::UNIMPLEMENTED)
      << "even a client's valid token does not open registration";
  EXPECT_EQ(RegisterAt(*internal_address_, other_ca, fake->address()), grpc::StatusCode::UNAVAILABLE)
      << "a certificate of another CA";

  for (int i = 0; i < 3; ++i) {
    v1::GenerateResponse response;
    const grpc::Status status = GenerateText(Client(Token()), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.token_ids_size(), 4);
  }
  const v1::ServerInfo info = ServerInfo();
  EXPECT_EQ(info.workers_size(), 3);
  for (const v1::WorkerInfo& worker : info.workers()) EXPECT_NE(worker.address(), fake->address());
  EXPECT_EQ(fake->StartedShards(), 0) << "the fake worker was given a shard";
  EXPECT_EQ(fake->GetStatusCalls(), 0) << "the coordinator never even checked it";
}

TEST_F(SecurityTest, HealthChecksNeedNoToken) {
  EXPECT_EQ(HealthCheck(MakeChannel(*address_, Client(""))), "SERVING");
}

}  // namespace
}  // namespace tessera
