// tessera-coordinator as a process: it prints the address it bound, serves the
// public API, and exits 0 on SIGTERM; bad flags exit 2.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/tessera.grpc.pb.h"

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
                       "127.0.0.1:0", "--health-interval-ms", "100", "--peer-transport", "nccl"});
  const std::string line = ReadLine(child.stdout_fd);
  const std::string prefix = "coordinator listening on ";
  ASSERT_TRUE(absl::StartsWith(line, prefix)) << line;
  const std::string address = line.substr(prefix.size());
  EXPECT_FALSE(absl::EndsWith(address, ":0"));

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
                       "127.0.0.1:0", "--metrics-port", "0", "--tokenizer", tokenizer});
  const std::string line = ReadLine(child.stdout_fd);
  const std::string prefix = "coordinator listening on ";
  ASSERT_TRUE(absl::StartsWith(line, prefix)) << line;
  const std::string address = line.substr(prefix.size());
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
  Child larger = Spawn({"--model", model, "--listen", "127.0.0.1:0", "--tokenizer",
                        std::string(TESSERA_TEST_DATA_DIR) + "/tokenizers/bpe1000-llama3split/tokenizer.json"});
  EXPECT_EQ(WaitForExit(larger.pid, absl::Seconds(10)), 2);
  EXPECT_EQ(ReadLine(larger.stdout_fd), "") << "nothing served";
  close(larger.stdout_fd);
  Child missing = Spawn({"--model", model, "--listen", "127.0.0.1:0", "--tokenizer", "/nowhere/tokenizer.json"});
  EXPECT_EQ(WaitForExit(missing.pid, absl::Seconds(10)), 1);
  close(missing.stdout_fd);
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
}

}  // namespace
}  // namespace tessera
