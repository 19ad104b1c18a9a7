// LocalCluster against the fake `tessera`: start, kill, restart, stop, and
// every way a start can go wrong, each checked for leftover processes.
//
// Why: a launcher that leaks a worker, hangs on a child that never speaks, or
// reports "timeout" for a child that crashed at once costs hours in failure
// testing. Each test ends by asserting this process has no children left.
#include "tools/cluster/local_cluster.h"

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tests/cluster/cluster_test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

LocalClusterOptions FakeOptions(int workers) {
  LocalClusterOptions options;
  options.binary = testing::FakeTesseraBinary();
  options.model_dir = "/models/fake";
  options.workers = workers;
  options.ready_timeout = 10s;
  options.stop_timeout = 2s;
  return options;
}

absl::StatusOr<v1::ModelInfo> ModelInfo(const std::string& address) {
  auto stub = v1::Tessera::NewStub(MakeChannel(address));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 2s);
  v1::ModelInfo info;
  RETURN_IF_ERROR(FromGrpcStatus(stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info)));
  return info;
}

std::vector<pid_t> AllPids(const LocalCluster& cluster) {
  std::vector<pid_t> pids = {cluster.coordinator_pid()};
  for (int i = 0; i < cluster.workers(); ++i) pids.push_back(cluster.worker_pid(i));
  return pids;
}

class LocalClusterTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(testing::NoChildrenLeft()) << "a test left a child process behind"; }
};

TEST_F(LocalClusterTest, StartsThreeWorkersAndStopLeavesNoProcess) {
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(FakeOptions(3));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_THAT((*cluster)->address(), StartsWith("127.0.0.1:"));
  absl::StatusOr<v1::ModelInfo> info = ModelInfo((*cluster)->address());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->workers_ready(), 3);
  EXPECT_EQ(info->model_path(), "/models/fake");

  const std::vector<pid_t> pids = AllPids(**cluster);
  for (pid_t pid : pids) {
    EXPECT_GT(pid, 0);
    EXPECT_FALSE(testing::ProcessGone(pid));
  }
  (*cluster)->Stop();
  for (pid_t pid : pids) EXPECT_TRUE(testing::ProcessGone(pid)) << "pid " << pid;
  EXPECT_EQ((*cluster)->coordinator_pid(), 0);
  (*cluster)->Stop();  // idempotent
}

TEST_F(LocalClusterTest, DestructorStopsEverything) {
  std::vector<pid_t> pids;
  {
    absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(FakeOptions(2));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    pids = AllPids(**cluster);
  }
  for (pid_t pid : pids) EXPECT_TRUE(testing::ProcessGone(pid)) << "pid " << pid;
}

TEST_F(LocalClusterTest, KillWorkerThenRestartIsReadyAgain) {
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(FakeOptions(3));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  LocalCluster& c = **cluster;
  const pid_t killed = c.worker_pid(1);
  ASSERT_TRUE(c.KillWorker(1).ok());
  EXPECT_TRUE(testing::ProcessGone(killed));
  EXPECT_EQ(c.worker_pid(1), 0);
  // The coordinator notices the loss; the others are untouched.
  ASSERT_TRUE(c.WaitForWorkersReady(2, 5s).ok());
  EXPECT_NE(c.worker_pid(0), 0);
  EXPECT_NE(c.worker_pid(2), 0);

  EXPECT_EQ(c.KillWorker(1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.KillWorker(3).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(c.RestartWorker(-1).code(), absl::StatusCode::kOutOfRange);

  ASSERT_TRUE(c.RestartWorker(1).ok());
  const pid_t restarted = c.worker_pid(1);
  EXPECT_NE(restarted, 0);
  EXPECT_NE(restarted, killed);
  absl::Status ready = c.WaitForWorkersReady(3, 10s);
  EXPECT_TRUE(ready.ok()) << ready;
  // Restarting a running worker replaces it.
  ASSERT_TRUE(c.RestartWorker(2).ok());
  ready = c.WaitForWorkersReady(3, 10s);
  EXPECT_TRUE(ready.ok()) << ready;

  const std::vector<pid_t> pids = AllPids(c);
  c.Stop();
  for (pid_t pid : pids) EXPECT_TRUE(testing::ProcessGone(pid)) << "pid " << pid;
  EXPECT_EQ(c.RestartWorker(1).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LocalClusterTest, ListensOnTheRequestedPort) {
  LocalClusterOptions options = FakeOptions(1);
  options.coordinator_port = testing::FreeLocalPort();
  ASSERT_GT(options.coordinator_port, 0);
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_EQ((*cluster)->address(), absl::StrCat("127.0.0.1:", options.coordinator_port));
}

TEST_F(LocalClusterTest, FlagsReachTheirProcesses) {
  LocalClusterOptions options = FakeOptions(2);
  options.coordinator_flags = {"--min-shard-tokens", "16"};
  options.worker_flags = {"--memory-budget-mb", "64"};
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  absl::StatusOr<v1::ModelInfo> info = ModelInfo((*cluster)->address());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->model_type(), "fake min_shard_tokens=16");

  auto stub = v1::Tessera::NewStub(MakeChannel((*cluster)->address()));
  // The fake learns each worker's budget from its first health check.
  bool seen = false;
  for (int attempt = 0; attempt < 50 && !seen; ++attempt) {
    grpc::ClientContext context;
    v1::ServerInfo server_info;
    ASSERT_TRUE(stub->GetServerInfo(&context, v1::GetServerInfoRequest(), &server_info).ok());
    seen = server_info.workers_size() == 2;
    for (const v1::WorkerInfo& worker : server_info.workers()) seen &= worker.memory_budget_bytes() == (64 << 20);
    if (!seen) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(seen);
}

TEST_F(LocalClusterTest, MissingBinaryFailsAtOnce) {
  LocalClusterOptions options = FakeOptions(2);
  options.binary = "/nonexistent/dir/tessera";
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(cluster.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(cluster.status().message(), HasSubstr("/nonexistent/dir/tessera"));
}

TEST_F(LocalClusterTest, NonExecutableBinaryFailsAtOnce) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/tessera";
  std::ofstream(path) << "not a program\n";
  chmod(path.c_str(), 0644);
  LocalClusterOptions options = FakeOptions(1);
  options.binary = path;
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  ASSERT_FALSE(cluster.ok());
  EXPECT_THAT(cluster.status().message(), HasSubstr(path));
}

TEST_F(LocalClusterTest, ExecFailureIsAnErrorNotAChild) {
  // Executable bit but no interpreter: access() passes, exec fails.
  testing::TempDir dir;
  const std::string path = dir.path() + "/tessera";
  std::ofstream(path) << "#!/nonexistent/interpreter\n";
  chmod(path.c_str(), 0755);
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Spawn({.argv = {path, "coordinator"}});
  ASSERT_FALSE(child.ok());
  EXPECT_THAT(child.status().message(), HasSubstr("cannot run " + path));
}

TEST_F(LocalClusterTest, CoordinatorExitingEarlyFailsFastWithItsStatus) {
  LocalClusterOptions options = FakeOptions(2);
  options.coordinator_flags = {"--fake-exit-before-listening"};
  options.log_path = "/dev/null";
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(cluster.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(cluster.status().message(), HasSubstr("coordinator exited with status 3"));
}

TEST_F(LocalClusterTest, SilentCoordinatorTimesOut) {
  LocalClusterOptions options = FakeOptions(2);
  options.coordinator_flags = {"--fake-never-listen"};
  options.ready_timeout = 500ms;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(cluster.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(cluster.status().message(), HasSubstr("coordinator listening on"));
}

TEST_F(LocalClusterTest, WorkerExitingDuringStartFailsFast) {
  LocalClusterOptions options = FakeOptions(2);
  options.worker_flags = {"--fake-exit-at-start"};
  options.log_path = "/dev/null";
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(cluster.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(cluster.status().message(), HasSubstr("exited with status 4"));
}

TEST_F(LocalClusterTest, TooFewWorkersTimesOutSayingHowMany) {
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(FakeOptions(1));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const absl::Status status = (*cluster)->WaitForWorkersReady(2, 300ms);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(status.message(), HasSubstr("workers_ready=1"));
}

TEST_F(LocalClusterTest, CancelRequestedStopsTheWait) {
  LocalClusterOptions options = FakeOptions(1);
  options.coordinator_flags = {"--fake-never-listen"};
  const auto start = std::chrono::steady_clock::now();
  options.cancel_requested = [start] { return std::chrono::steady_clock::now() - start > 200ms; };
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(cluster.status().code(), absl::StatusCode::kCancelled);
}

TEST_F(LocalClusterTest, StopEscalatesToSigkill) {
  LocalClusterOptions options = FakeOptions(2);
  options.worker_flags = {"--fake-ignore-sigterm"};
  options.stop_timeout = 300ms;
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::vector<pid_t> pids = AllPids(**cluster);
  const auto start = std::chrono::steady_clock::now();
  (*cluster)->Stop();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);
  for (pid_t pid : pids) EXPECT_TRUE(testing::ProcessGone(pid)) << "pid " << pid;
}

TEST_F(LocalClusterTest, ReportsChildrenThatExitOnTheirOwn) {
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(FakeOptions(2));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_TRUE((*cluster)->ReapExitedChildren().empty());
  ASSERT_EQ(kill((*cluster)->worker_pid(0), SIGTERM), 0);
  std::vector<LocalClusterExit> exits;
  for (int attempt = 0; attempt < 100 && exits.empty(); ++attempt) {
    exits = (*cluster)->ReapExitedChildren();
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].worker, 0);
  EXPECT_EQ(DescribeWaitStatus(exits[0].wait_status), "exited with status 0");
  EXPECT_TRUE((*cluster)->ReapExitedChildren().empty());  // reported once
  // A worker gone by itself is an error for WaitForWorkersReady.
  EXPECT_EQ((*cluster)->WaitForWorkersReady(1, 1s).code(), absl::StatusCode::kUnavailable);
}

TEST_F(LocalClusterTest, LogFileGetsChildrenOutput) {
  testing::TempDir dir;
  LocalClusterOptions options = FakeOptions(2);
  options.log_path = dir.path() + "/cluster.log";
  {
    absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
  }
  const std::string log = testing::ReadFileOrEmpty(options.log_path);
  EXPECT_THAT(log, HasSubstr("fake coordinator: more stdout after the address line"));
  EXPECT_THAT(log, HasSubstr("fake worker: registered as 127.0.0.1:"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("coordinator listening on")));
}

TEST_F(LocalClusterTest, DescribesWaitStatuses) {
  EXPECT_EQ(DescribeWaitStatus(3 << 8), "exited with status 3");
  EXPECT_THAT(DescribeWaitStatus(SIGKILL), StartsWith("killed by signal 9"));
}

}  // namespace
}  // namespace tessera
