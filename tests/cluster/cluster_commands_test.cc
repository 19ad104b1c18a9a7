// `tessera generate` and `tessera local`, run as processes of the fake binary
// (which carries the real commands): what reaches stdout and stderr, exit
// codes, flags passed through, and a local cluster stopped by SIGINT leaving
// no process behind.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster/cluster_test_util.h"
#include "tools/cluster/child_process.h"
#include "tools/cluster/local_cluster.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

std::vector<std::string> Generate(const std::string& server, std::vector<std::string> flags) {
  std::vector<std::string> argv = {testing::FakeTesseraBinary(), "generate", "--server", server};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

class GenerateCommandTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    LocalClusterOptions options;
    options.binary = testing::FakeTesseraBinary();
    options.model_dir = "/models/fake";
    options.workers = 2;
    options.ready_timeout = 10s;
    absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
    EXPECT_TRUE(testing::NoChildrenLeft());
  }
  static const std::string& server() { return cluster_->address(); }

  static LocalCluster* cluster_;
};
LocalCluster* GenerateCommandTest::cluster_ = nullptr;

TEST_F(GenerateCommandTest, StreamsIdsToStdoutAndProgressAndSummaryToStderr) {
  const testing::CommandResult result =
      testing::RunCommand(Generate(server(), {"--prompt-ids", "5,6,7", "--max-new-tokens", "4"}), 10s);
  EXPECT_EQ(result.exit_code(), 0) << result.stderr_text;
  EXPECT_EQ(result.stdout_text, "8 9 10 11\n");
  // Not a terminal: one line per update at most each second, and the last.
  EXPECT_THAT(result.stderr_text, HasSubstr("prefill: layers 1/4, 3 tokens over 2 shards\n"));
  EXPECT_THAT(result.stderr_text, HasSubstr("prefill: layers 4/4, 3 tokens over 2 shards\n"));
  EXPECT_THAT(result.stderr_text, Not(HasSubstr("layers 2/4")));
  EXPECT_THAT(result.stderr_text, Not(HasSubstr("\r")));
  EXPECT_THAT(result.stderr_text, HasSubstr("finished: length; usage: prompt 3, completion 4, total 7 tokens; 2 shards"));
  EXPECT_THAT(result.stderr_text, HasSubstr("tokens/s"));
}

TEST_F(GenerateCommandTest, OneShardAndOneTokenAreSingular) {
  const testing::CommandResult result =
      testing::RunCommand(Generate(server(), {"--prompt-ids", "5", "--max-new-tokens", "1", "--ignore-eos"}), 10s);
  EXPECT_EQ(result.exit_code(), 0) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr("prefill: layers 4/4, 1 token over 1 shard\n"));
  EXPECT_THAT(result.stderr_text, HasSubstr("usage: prompt 1, completion 1, total 2 tokens; 1 shard;"));
  EXPECT_THAT(result.stderr_text, Not(HasSubstr("1 shards")));
  EXPECT_THAT(result.stderr_text, Not(HasSubstr("1 tokens")));
}

TEST_F(GenerateCommandTest, StopIdsAndDefaults) {
  testing::CommandResult result = testing::RunCommand(
      Generate(server(), {"--prompt-ids", "[20, 21]", "--stop-ids", "30,24", "--temperature", "0.8", "--top-k",
                          "5", "--top-p", "0.9", "--seed", "18446744073709551615", "--ignore-eos"}),
      10s);
  EXPECT_EQ(result.exit_code(), 0) << result.stderr_text;
  EXPECT_EQ(result.stdout_text, "22 23 24\n");
  EXPECT_THAT(result.stderr_text, HasSubstr("finished: stop_token; usage: prompt 2, completion 3, total 5"));

  result = testing::RunCommand(Generate(server(), {"--prompt-ids", "100"}), 10s);  // 64 by default
  EXPECT_EQ(result.exit_code(), 0) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr("completion 64,"));
  EXPECT_THAT(result.stdout_text, ::testing::StartsWith("101 102 "));
  EXPECT_THAT(result.stdout_text, ::testing::EndsWith(" 164\n"));
}

TEST_F(GenerateCommandTest, PromptIdsFromAFile) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/prompt.json";
  std::ofstream(path) << "[1,\n 2,\n 40]\n";
  const testing::CommandResult result =
      testing::RunCommand(Generate(server(), {"--prompt-ids-file", path, "--max-new-tokens", "2"}), 10s);
  EXPECT_EQ(result.exit_code(), 0) << result.stderr_text;
  EXPECT_EQ(result.stdout_text, "41 42\n");
}

TEST_F(GenerateCommandTest, ServerErrorsExitOneWithTheirCode) {
  testing::CommandResult result =
      testing::RunCommand(Generate(server(), {"--prompt-ids", "1", "--temperature", "-1"}), 10s);
  EXPECT_EQ(result.exit_code(), 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("tessera generate: INVALID_ARGUMENT: temperature must be >= 0. Given: -1"));
  EXPECT_EQ(result.stdout_text, "");

  result = testing::RunCommand(Generate(server(), {"--prompt-ids", "1", "--max-new-tokens", "1000"}), 10s);
  EXPECT_EQ(result.exit_code(), 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("INVALID_ARGUMENT: max_new_tokens must be in [1, 256]. Given: 1000"));

  result = testing::RunCommand(
      Generate(absl::StrCat("127.0.0.1:", testing::FreeLocalPort()), {"--prompt-ids", "1", "--timeout-s", "5"}), 10s);
  EXPECT_EQ(result.exit_code(), 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("tessera generate: UNAVAILABLE: "));

  testing::TempDir dir;
  result = testing::RunCommand(Generate(server(), {"--prompt-ids-file", dir.path() + "/missing"}), 10s);
  EXPECT_EQ(result.exit_code(), 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("tessera generate: NOT_FOUND: cannot read"));
}

TEST_F(GenerateCommandTest, BadFlagsExitTwo) {
  const std::vector<std::vector<std::string>> bad = {
      {"--prompt-ids", "1,x"},
      {"--prompt-ids", ""},
      {"--prompt-ids", "1", "--prompt-ids-file", "/dev/null"},
      {},
      {"--prompt-ids", "1", "--max-new-tokens", "ten"},
      {"--prompt-ids", "1", "--max-new-tokens", "4294967296"},
      {"--prompt-ids", "1", "--temperature", "nan"},
      {"--prompt-ids", "1", "--seed", "-1"},
      {"--prompt-ids", "1", "--stop-ids", "1,,2"},
      {"--prompt-ids", "1", "--timeout-s", "-3"},
      {"--prompt-ids", "1", "--no-such-flag"},
      {"--prompt-ids", "1", "--logit-bias", "3=1.5"},
      {"--prompt-ids", "1", "--logit-bias", "3:lots"},
      {"--prompt-ids", "1", "--repetition-penalty", "inf"},
      {"--prompt-ids", "1", "--logprobs", "many"},
      {"--prompt-ids", "1", "--min-tokens", "4294967296"},
  };
  for (const std::vector<std::string>& flags : bad) {
    const testing::CommandResult result = testing::RunCommand(Generate(server(), flags), 10s);
    EXPECT_EQ(result.exit_code(), 2) << absl::StrJoin(flags, " ") << "\n" << result.stderr_text;
    EXPECT_THAT(result.stderr_text, HasSubstr("usage: tessera generate"));
  }
  const testing::CommandResult no_server =
      testing::RunCommand({testing::FakeTesseraBinary(), "generate", "--prompt-ids", "1"}, 10s);
  EXPECT_EQ(no_server.exit_code(), 2);
  EXPECT_THAT(no_server.stderr_text, HasSubstr("--server is required"));
}

// Waits until `path` contains `text`, up to `timeout`.
bool WaitForFileText(const std::string& path, absl::string_view text, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!absl::StrContains(testing::ReadFileOrEmpty(path), text)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

TEST(LocalCommandTest, RunsUntilSigintThenLeavesNothing) {
  testing::TempDir dir;
  const int port = testing::FreeLocalPort();
  const std::string out_path = dir.path() + "/stdout";
  const std::string log_path = dir.path() + "/children.log";
  const int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  absl::StatusOr<std::unique_ptr<ChildProcess>> local = ChildProcess::Spawn(
      {.argv = {testing::FakeTesseraBinary(), "local", "--workers", "2", "--model", "/models/fake", "--port",
                absl::StrCat(port), "--min-shard-tokens", "8", "--memory-budget-mb", "32", "--log-file", log_path},
       .stdout_fd = out_fd});
  close(out_fd);
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE(WaitForFileText(out_path, "workers ready", 10s)) << testing::ReadFileOrEmpty(out_path);
  const std::string address = absl::StrCat("127.0.0.1:", port);
  EXPECT_THAT(testing::ReadFileOrEmpty(out_path),
              HasSubstr(absl::StrCat("local cluster: coordinator on ", address, ", 2 workers ready\n")));
  EXPECT_THAT(testing::ReadFileOrEmpty(out_path), HasSubstr(absl::StrCat("tessera generate --server ", address)));

  const std::vector<pid_t> children = testing::ChildrenOf((*local)->pid());
  EXPECT_EQ(children.size(), 3u);

  const testing::CommandResult generated =
      testing::RunCommand(Generate(address, {"--prompt-ids", "1 2", "--max-new-tokens", "3"}), 10s);
  EXPECT_EQ(generated.exit_code(), 0) << generated.stderr_text;
  EXPECT_EQ(generated.stdout_text, "3 4 5\n");

  ASSERT_EQ(kill((*local)->pid(), SIGINT), 0);
  for (int attempt = 0; attempt < 500 && (*local)->Poll(); ++attempt) std::this_thread::sleep_for(20ms);
  ASSERT_FALSE((*local)->running()) << "tessera local did not exit on SIGINT";
  EXPECT_EQ(DescribeWaitStatus(*(*local)->wait_status()), "exited with status 0");
  EXPECT_THAT(testing::ReadFileOrEmpty(out_path), HasSubstr("local cluster: stopped"));
  for (pid_t child : children) EXPECT_TRUE(testing::ProcessGoneWithin(child, 2s)) << "orphan " << child;
  EXPECT_THAT(testing::ReadFileOrEmpty(log_path), HasSubstr("fake worker: registered"));
}

TEST(LocalCommandTest, SaysItIsInsecureByDefault) {
  testing::TempDir dir;
  const std::string out_path = dir.path() + "/stdout";
  const int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  absl::StatusOr<std::unique_ptr<ChildProcess>> local = ChildProcess::Spawn(
      {.argv = {testing::FakeTesseraBinary(), "local", "--workers", "1", "--model", "/models/fake", "--port", "0",
                "--log-file", dir.path() + "/children.log"},
       .stdout_fd = out_fd});
  close(out_fd);
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE(WaitForFileText(out_path, "Ctrl-C stops", 10s)) << testing::ReadFileOrEmpty(out_path);
  const std::string out = testing::ReadFileOrEmpty(out_path);
  EXPECT_THAT(out, HasSubstr("INSECURE: no TLS, no authentication"));
  EXPECT_THAT(out, HasSubstr("internal API (workers register here): 127.0.0.1:"));
  EXPECT_THAT(testing::ReadFileOrEmpty(dir.path() + "/children.log"), Not(HasSubstr("--insecure conflicts")));
  kill((*local)->pid(), SIGINT);
  for (int attempt = 0; attempt < 500 && (*local)->Poll(); ++attempt) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(DescribeWaitStatus(*(*local)->wait_status()), "exited with status 0");
}

// `local --tls` against the fake roles, which use the real rpc/ security: the
// printed client command works as printed, and nothing works without its
// token or over plaintext. (The real roles: tests/e2e/security_test.cc.)
TEST(LocalCommandTest, TlsClusterTakesOnlyTheTokenOverTls) {
  testing::TempDir dir;
  const std::string tls_dir = dir.path() + "/tls";
  const std::string out_path = dir.path() + "/stdout";
  const int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  absl::StatusOr<std::unique_ptr<ChildProcess>> local = ChildProcess::Spawn(
      {.argv = {testing::FakeTesseraBinary(), "local", "--workers", "2", "--model", "/models/fake", "--port", "0",
                "--tls", "--tls-dir", tls_dir, "--log-file", dir.path() + "/children.log"},
       .stdout_fd = out_fd});
  close(out_fd);
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE(WaitForFileText(out_path, "Ctrl-C stops", 20s))
      << testing::ReadFileOrEmpty(out_path) << testing::ReadFileOrEmpty(dir.path() + "/children.log");
  const std::string out = testing::ReadFileOrEmpty(out_path);
  EXPECT_THAT(out, Not(HasSubstr("INSECURE")));
  EXPECT_THAT(out, HasSubstr("2 workers ready"));
  const std::string prefix = "local cluster: coordinator on ";
  const size_t at = out.find(prefix);
  ASSERT_NE(at, std::string::npos) << out;
  const std::string address = out.substr(at + prefix.size(), out.find(',', at) - at - prefix.size());
  const std::string ca = tls_dir + "/ca.crt";
  const std::string tokens = tls_dir + "/tokens";
  EXPECT_THAT(out, HasSubstr(absl::StrCat("tessera generate --server ", address, " --tls-ca ", ca, " --token-file ",
                                          tokens)));

  testing::CommandResult result = testing::RunCommand(
      Generate(address, {"--tls-ca", ca, "--token-file", tokens, "--prompt-ids", "1 2", "--max-new-tokens", "3"}), 10s);
  EXPECT_EQ(result.exit_code(), 0) << result.stderr_text;
  EXPECT_EQ(result.stdout_text, "3 4 5\n");

  result = testing::RunCommand(Generate(address, {"--tls-ca", ca, "--prompt-ids", "1", "--timeout-s", "5"}), 10s);
  EXPECT_EQ(result.exit_code(), 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("UNAUTHENTICATED: missing bearer token"));

  const std::string wrong = dir.path() + "/wrong";
  std::ofstream(wrong) << "# not the cluster's\n0123456789abcdef0123456789abcdef\n";
  result = testing::RunCommand(
      Generate(address, {"--tls-ca", ca, "--token-file", wrong, "--prompt-ids", "1", "--timeout-s", "5"}), 10s);
  EXPECT_EQ(result.exit_code(), 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("UNAUTHENTICATED: unknown bearer token"));

  result = testing::RunCommand(Generate(address, {"--prompt-ids", "1", "--timeout-s", "5"}), 10s);  // plaintext
  EXPECT_EQ(result.exit_code(), 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(result.stderr_text, HasSubstr("give --tls-ca and --token-file"));

  result = testing::RunCommand(Generate(address, {"--insecure", "--token-file", tokens, "--prompt-ids", "1"}), 10s);
  EXPECT_EQ(result.exit_code(), 2) << "a token is never sent in plaintext";

  kill((*local)->pid(), SIGINT);
  for (int attempt = 0; attempt < 500 && (*local)->Poll(); ++attempt) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(DescribeWaitStatus(*(*local)->wait_status()), "exited with status 0");
  EXPECT_EQ(testing::ReadFileOrEmpty(tls_dir + "/ca.crt").empty(), false) << "--tls-dir is kept";
}

TEST(LocalCommandTest, FailsWhenThePortIsTaken) {
  // A plain listening socket without SO_REUSEPORT, so gRPC cannot share it.
  const int taken_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(taken_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(taken_fd, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(taken_fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const testing::CommandResult result = testing::RunCommand(
      {testing::FakeTesseraBinary(), "local", "--workers", "1", "--model", "/m", "--port",
       absl::StrCat(ntohs(address.sin_port))},
      10s);
  close(taken_fd);
  EXPECT_EQ(result.exit_code(), 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("tessera local: UNAVAILABLE: the coordinator exited with status 1"));
}

TEST(LocalCommandTest, BadFlagsExitTwo) {
  for (const std::vector<std::string>& flags : std::vector<std::vector<std::string>>{
           {"--model", "/m"}, {"--workers", "0", "--model", "/m"}, {"--workers", "2"},
           {"--workers", "2", "--model", "/m", "--port", "70000"}, {"--workers", "two", "--model", "/m"},
           {"--workers", "1", "--model", "/m", "--tls", "--insecure"}, {"--workers", "1", "--model", "/m", "--tls-dir", "/x"}}) {
    std::vector<std::string> argv = {testing::FakeTesseraBinary(), "local"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    const testing::CommandResult result = testing::RunCommand(argv, 10s);
    EXPECT_EQ(result.exit_code(), 2) << absl::StrJoin(flags, " ") << "\n" << result.stderr_text;
    EXPECT_THAT(result.stderr_text, HasSubstr("usage: tessera local"));
  }
}

}  // namespace
}  // namespace tessera
