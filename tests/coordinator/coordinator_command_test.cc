// tessera-coordinator as a process: it prints the addresses it bound (the
// internal API's line first), serves the public API on one port and worker
// registration on the other, and exits 0 on SIGTERM; bad flags, and no
// security flags at all, exit 2. With TLS: tokens on the public port, client
// certificates on the internal one, and a plaintext health port.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "rpc/grpc_security.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tessera/v1/worker.grpc.pb.h"
#include "tests/e2e/health_client.h"
#include "tools/cluster/local_tls.h"

extern char** environ;

namespace tessera {
namespace {

struct Child {
  pid_t pid = -1;
  int stdout_fd = -1;
};

Child Spawn(std::vector<std::string> args) {
  args.insert(args.begin(), TESSERA_COORDINATOR_BINARY);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int pipe_fds[2];
  EXPECT_EQ(pipe(pipe_fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  Child child;
  EXPECT_EQ(posix_spawn(&child.pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  child.stdout_fd = pipe_fds[0];
  return child;
}

// Reads stdout until a full line arrives (or EOF).
std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

// The public address from the launch lines ("coordinator internal API on I",
// then "coordinator listening on P"); `internal` receives I.
std::string ReadAddresses(int fd, std::string* internal = nullptr) {
  const std::string internal_prefix = "coordinator internal API on ";
  const std::string line = ReadLine(fd);
  EXPECT_TRUE(absl::StartsWith(line, internal_prefix)) << line;
  if (internal != nullptr && absl::StartsWith(line, internal_prefix)) *internal = line.substr(internal_prefix.size());
  const std::string listening = ReadLine(fd);
  const std::string prefix = "coordinator listening on ";
  EXPECT_TRUE(absl::StartsWith(listening, prefix)) << listening;
  return absl::StartsWith(listening, prefix) ? listening.substr(prefix.size()) : "";
}

// The exit code, or -1 when the child did not exit within `timeout` (then killed).
int WaitForExit(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  while (absl::Now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

TEST(CoordinatorCommandTest, ServesUntilSigtermThenExitsZero) {
  Child child = Spawn({"--model", std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny", "--listen",
                       "127.0.0.1:0", "--health-interval-ms", "100", "--peer-transport", "nccl", "--insecure"});
  std::string internal;
  const std::string address = ReadAddresses(child.stdout_fd, &internal);
  ASSERT_FALSE(address.empty());
  EXPECT_FALSE(absl::EndsWith(address, ":0"));
  EXPECT_FALSE(absl::EndsWith(internal, ":0"));
  EXPECT_NE(address, internal);

  auto stub = v1::Tessera::NewStub(MakeChannel(address));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ModelInfo info;
  ASSERT_TRUE(stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.model_type(), "mamba2");
  EXPECT_EQ(info.vocab_size(), 512);
  EXPECT_EQ(info.num_layers(), 4);
  EXPECT_EQ(info.eos_token_id(), 2);
  EXPECT_EQ(info.max_new_tokens_limit(), 4096);
  EXPECT_EQ(info.workers_ready(), 0);
  grpc::ClientContext server_context;
  server_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ServerInfo server;
  ASSERT_TRUE(stub->GetServerInfo(&server_context, v1::GetServerInfoRequest(), &server).ok());
  EXPECT_EQ(server.peer_transport(), "nccl");

  kill(child.pid, SIGTERM);
  EXPECT_EQ(WaitForExit(child.pid, absl::Seconds(10)), 0);
  close(child.stdout_fd);
}

TEST(CoordinatorCommandTest, MetricsAddressComesOnItsOwnLineAndInServerInfo) {
  const std::string tokenizer = std::string(TESSERA_TEST_DATA_DIR) + "/tokenizers/bpe512-gpt2split/tokenizer.json";
  Child child = Spawn({"--model", std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny", "--listen",
                       "127.0.0.1:0", "--metrics-port", "0", "--tokenizer", tokenizer, "--insecure"});
  const std::string address = ReadAddresses(child.stdout_fd);
  ASSERT_FALSE(address.empty());
  EXPECT_EQ(address.find(' '), std::string::npos) << "launchers take the rest of the line as the address";
  const std::string metrics_line = ReadLine(child.stdout_fd);
  const std::string metrics_prefix = "coordinator metrics on http://";
  ASSERT_TRUE(absl::StartsWith(metrics_line, metrics_prefix)) << metrics_line;
  ASSERT_TRUE(absl::EndsWith(metrics_line, "/metrics")) << metrics_line;
  const std::string metrics_address =
      metrics_line.substr(metrics_prefix.size(), metrics_line.size() - metrics_prefix.size() - 8);
  EXPECT_TRUE(absl::StartsWith(metrics_address, "127.0.0.1:")) << "served on the --listen host";
  EXPECT_FALSE(absl::EndsWith(metrics_address, ":0"));

  auto stub = v1::Tessera::NewStub(MakeChannel(address));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ServerInfo info;
  ASSERT_TRUE(stub->GetServerInfo(&context, v1::GetServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.metrics_address(), metrics_address);
  grpc::ClientContext model_context;
  v1::ModelInfo model;
  ASSERT_TRUE(stub->GetModelInfo(&model_context, v1::GetModelInfoRequest(), &model).ok());
  EXPECT_EQ(model.tokenizer_path(), tokenizer);

  kill(child.pid, SIGTERM);
  EXPECT_EQ(WaitForExit(child.pid, absl::Seconds(10)), 0);
  close(child.stdout_fd);
}

TEST(CoordinatorCommandTest, ATokenizerThatDoesNotFitTheModelStopsTheStart) {
  const std::string model = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny";  // vocab_size 512
  Child larger = Spawn({"--model", model, "--listen", "127.0.0.1:0", "--insecure", "--tokenizer",
                        std::string(TESSERA_TEST_DATA_DIR) + "/tokenizers/bpe1000-llama3split/tokenizer.json"});
  EXPECT_EQ(WaitForExit(larger.pid, absl::Seconds(10)), 2);
  EXPECT_EQ(ReadLine(larger.stdout_fd), "") << "nothing served";
  close(larger.stdout_fd);
  Child missing =
      Spawn({"--model", model, "--listen", "127.0.0.1:0", "--insecure", "--tokenizer", "/nowhere/tokenizer.json"});
  EXPECT_EQ(WaitForExit(missing.pid, absl::Seconds(10)), 1);
  close(missing.stdout_fd);
}

// The finding this guards against: RegisterWorker on the public port let
// any client pose as a worker. Now only the internal port offers it.
TEST(CoordinatorCommandTest, RegistrationIsOnlyOnTheInternalPort) {
  Child child = Spawn({"--model", std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny", "--listen",
                       "127.0.0.1:0", "--insecure"});
  std::string internal;
  const std::string address = ReadAddresses(child.stdout_fd, &internal);
  ASSERT_FALSE(address.empty());
  const auto register_at = [](const std::string& where) {
    auto stub = v1::Coordinator::NewStub(MakeChannel(where, ChannelSecurity::Insecure()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::RegisterWorkerRequest request;
    request.set_address("127.0.0.1:1");
    v1::RegisterWorkerResponse response;
    return stub->RegisterWorker(&context, request, &response).error_code();
  };
  EXPECT_EQ(register_at(address), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(register_at(internal), grpc::StatusCode::UNIMPLEMENTED);
  auto internal_stub = v1::Tessera::NewStub(MakeChannel(internal, ChannelSecurity::Insecure()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ModelInfo info;
  EXPECT_EQ(internal_stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).error_code(),
            grpc::StatusCode::UNIMPLEMENTED)
      << "the public API is not on the internal port either";
  kill(child.pid, SIGTERM);
  EXPECT_EQ(WaitForExit(child.pid, absl::Seconds(10)), 0);
  close(child.stdout_fd);
}

class CoordinatorTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/coordinator-tls.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    absl::StatusOr<LocalTlsFiles> files = GenerateLocalTls(dir_ + "/cluster");
    ASSERT_TRUE(files.ok()) << files.status();
    files_ = *files;
    absl::StatusOr<LocalTlsFiles> rogue = GenerateLocalTls(dir_ + "/rogue");
    ASSERT_TRUE(rogue.ok()) << rogue.status();
    rogue_ = *rogue;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Pem(const std::string& path) { return *ReadPemFile(path, "test file"); }

  std::string dir_;
  LocalTlsFiles files_, rogue_;
};

TEST_F(CoordinatorTlsTest, TokensOnThePublicPortCertificatesOnTheInternalOne) {
  Child child = Spawn({"--model", std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny", "--listen",
                       "127.0.0.1:0", "--tls-cert", files_.cert, "--tls-key", files_.key, "--tls-ca", files_.ca_cert,
                       "--auth-tokens-file", files_.tokens, "--health-port", "0"});
  std::string internal;
  const std::string address = ReadAddresses(child.stdout_fd, &internal);
  ASSERT_FALSE(address.empty());
  const std::string health_line = ReadLine(child.stdout_fd);
  const std::string health_prefix = "coordinator health on ";
  ASSERT_TRUE(absl::StartsWith(health_line, health_prefix)) << health_line;
  const std::string health = health_line.substr(health_prefix.size(), health_line.find(' ', health_prefix.size()) -
                                                                          health_prefix.size());
  const auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(5); };
  const auto model_info = [&](const ChannelSecurity& security) {
    auto stub = v1::Tessera::NewStub(MakeChannel(address, security));
    grpc::ClientContext context;
    context.set_deadline(deadline());
    v1::ModelInfo info;
    return stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).error_code();
  };
  ChannelSecurity client;
  client.root_ca_pem = Pem(files_.ca_cert);
  EXPECT_EQ(model_info(client), grpc::StatusCode::UNAUTHENTICATED) << "no token";
  client.bearer_token = "0123456789abcdef0123456789abcdef";
  EXPECT_EQ(model_info(client), grpc::StatusCode::UNAUTHENTICATED) << "a wrong token";
  client.bearer_token = files_.token;
  EXPECT_EQ(model_info(client), grpc::StatusCode::OK);
  EXPECT_EQ(model_info(ChannelSecurity::Insecure()), grpc::StatusCode::UNAVAILABLE) << "plaintext";
  {
    auto stub = v1::Coordinator::NewStub(MakeChannel(address, client));
    grpc::ClientContext context;
    context.set_deadline(deadline());
    v1::RegisterWorkerResponse response;
    EXPECT_EQ(stub->RegisterWorker(&context, v1::RegisterWorkerRequest(), &response).error_code(),
              grpc::StatusCode::UNIMPLEMENTED)
        << "a token does not make a worker";
  }

  const auto register_at_internal = [&](const ChannelSecurity& security) {
    auto stub = v1::Coordinator::NewStub(MakeChannel(internal, security));
    grpc::ClientContext context;
    context.set_deadline(deadline());
    v1::RegisterWorkerRequest request;
    request.set_address("127.0.0.1:1");
    v1::RegisterWorkerResponse response;
    return stub->RegisterWorker(&context, request, &response).error_code();
  };
  ChannelSecurity no_certificate;
  no_certificate.root_ca_pem = Pem(files_.ca_cert);
  EXPECT_EQ(register_at_internal(no_certificate), grpc::StatusCode::UNAVAILABLE);
  ChannelSecurity rogue = no_certificate;
  rogue.identity = {Pem(rogue_.cert), Pem(rogue_.key)};
  EXPECT_EQ(register_at_internal(rogue), grpc::StatusCode::UNAVAILABLE) << "a certificate of another CA";
  EXPECT_EQ(register_at_internal(ChannelSecurity::Insecure()), grpc::StatusCode::UNAVAILABLE);
  ChannelSecurity member = no_certificate;
  member.identity = {Pem(files_.cert), Pem(files_.key)};
  EXPECT_NE(register_at_internal(member), grpc::StatusCode::UNAVAILABLE) << "the cluster's certificate gets through";

  // Plaintext health checks for probes, and nothing else there.
  auto health_channel = MakeChannel(health, ChannelSecurity::Insecure());
  {
    auto stub = v1::Tessera::NewStub(health_channel);
    grpc::ClientContext context;
    context.set_deadline(deadline());
    v1::ModelInfo info;
    EXPECT_EQ(stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
  EXPECT_EQ(HealthCheck(health_channel), "SERVING");

  kill(child.pid, SIGTERM);
  EXPECT_EQ(WaitForExit(child.pid, absl::Seconds(10)), 0);
  close(child.stdout_fd);
}

TEST(CoordinatorCommandTest, SecurityIsNeverImplicit) {
  const std::string model = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny";
  for (const std::vector<std::string>& flags : std::vector<std::vector<std::string>>{
           {},                                                  // neither TLS nor --insecure
           {"--tls-cert", "/c", "--tls-key", "/k"},             // TLS without the CA and the tokens
           {"--insecure", "--tls-cert", "/c"},                  // both
           {"--insecure", "--auth-tokens-file", "/t"},          // tokens in plaintext
           {"--insecure", "--listen", "127.0.0.1:50999", "--internal-listen", "127.0.0.1:50999"}}) {  // one port
    std::vector<std::string> args = {"--model", model};
    args.insert(args.end(), flags.begin(), flags.end());
    Child child = Spawn(args);
    EXPECT_EQ(WaitForExit(child.pid, absl::Seconds(10)), 2) << flags.size();
    EXPECT_EQ(ReadLine(child.stdout_fd), "") << "nothing served";
    close(child.stdout_fd);
  }
  Child unreadable = Spawn({"--model", model, "--listen", "127.0.0.1:0", "--tls-cert", "/nowhere/c", "--tls-key",
                            "/nowhere/k", "--tls-ca", "/nowhere/ca", "--auth-tokens-file", "/nowhere/t"});
  EXPECT_EQ(WaitForExit(unreadable.pid, absl::Seconds(10)), 1);
  close(unreadable.stdout_fd);
}

TEST(CoordinatorCommandTest, BadFlagsExitTwo) {
  Child unknown = Spawn({"--model", std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny", "--bogus", "1"});
  EXPECT_EQ(WaitForExit(unknown.pid, absl::Seconds(10)), 2);
  close(unknown.stdout_fd);
  Child negative =
      Spawn({"--model", std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny", "--max-new-tokens-limit", "0"});
  EXPECT_EQ(WaitForExit(negative.pid, absl::Seconds(10)), 2);
  close(negative.stdout_fd);
  Child metrics_port =
      Spawn({"--model", std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny", "--metrics-port", "70000"});
  EXPECT_EQ(WaitForExit(metrics_port.pid, absl::Seconds(10)), 2);
  close(metrics_port.stdout_fd);
  Child transport =
      Spawn({"--model", std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny", "--peer-transport", "rdma"});
  EXPECT_EQ(WaitForExit(transport.pid, absl::Seconds(10)), 2);
  close(transport.stdout_fd);
  Child layout =
      Spawn({"--model", std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny", "--shard-layout", "striped"});
  EXPECT_EQ(WaitForExit(layout.pid, absl::Seconds(10)), 2);
  close(layout.stdout_fd);
  Child zigzag_min =
      Spawn({"--model", std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny", "--zigzag-min-tokens", "0"});
  EXPECT_EQ(WaitForExit(zigzag_min.pid, absl::Seconds(10)), 2);
  close(zigzag_min.stdout_fd);
}

}  // namespace
}  // namespace tessera
