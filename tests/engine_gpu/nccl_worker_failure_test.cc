// GPU workers over NCCL, one group of every visible GPU (2 to 8), one of
// them lost in the middle of a long prefill: the request fails with
// UNAVAILABLE within seconds instead of hanging the others, and after a
// restart the next request runs over NCCL again (in a new group: an aborted
// communicator is never reused). Two ways to lose a peer: SIGSTOP of the last
// rank (it stays connected but silent, so the survivors' collectives must
// time out and abort) and SIGKILL of rank 0 (the group's bootstrap root).
// Prompts are dealt zigzag (every rank holds two pieces). Needs two GPUs;
// skips otherwise.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "gtest/gtest.h"
#include "tests/e2e/cluster_fixture.h"
#include "tools/random_model_command.h"
#include "tools/cli/engine_factory.h"

namespace tessera {
namespace {

constexpr int kMaxWorkers = 8;
constexpr int kPromptTokensPerWorker = 32768;  // seconds of prefill whatever the group's size
constexpr auto kFailWithin = std::chrono::seconds(20);  // peer timeout 3 s plus health checks and teardown

std::vector<int32_t> RandomPrompt(int64_t length, int64_t vocab) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(length);
  for (int32_t& id : ids) id = token(rng);
  return ids;
}

class NcclWorkerFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    workers_ = std::min(VisibleCudaDevices(), kMaxWorkers);
    if (workers_ < 2) GTEST_SKIP() << "needs two CUDA devices";
    model_dir_ = std::string(::testing::TempDir()) + "/nccl_failure_model";
    RandomModelOptions model;
    model.out_dir = model_dir_;  // 8B layer shapes: prefill long enough to interrupt
    ASSERT_TRUE(WriteRandomModel(model, nullptr).ok());
    LocalClusterOptions options;
    // The build's binary, or the one next to this test (a GPU bundle's bin/).
    options.binary = TESSERA_BINARY;
    if (access(options.binary.c_str(), X_OK) != 0) {
      absl::StatusOr<std::string> next_to_self = FindTesseraBinaryNextToSelf();
      ASSERT_TRUE(next_to_self.ok()) << next_to_self.status();
      options.binary = *next_to_self;
    }
    options.model_dir = model_dir_;
    options.workers = workers_;
    options.coordinator_flags = {"--min-shard-tokens", "1", "--peer-timeout-ms", "3000", "--shard-layout", "zigzag"};
    options.worker_flags = {"--backend", "cuda", "--precision", "bf16", "--memory-budget-mb", "4096"};
    for (int d = 0; d < workers_; ++d) options.worker_devices.push_back(d);
    options.ready_timeout = std::chrono::seconds(120);
    options.log_path = std::string(::testing::TempDir()) + "/nccl_worker_failure.log";
    absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    stub_ = ClientFor(*cluster_);
  }

  // A full request; returns its status and how many shards it ran on.
  grpc::Status Generate(int shards_expected) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    v1::GenerateResponse response;
    const grpc::Status status = stub_->Generate(&context, GreedyRequest(RandomPrompt(kPromptTokensPerWorker * workers_, 1024), 4), &response);
    if (status.ok()) {
      EXPECT_EQ(response.shards(), shards_expected);
      EXPECT_EQ(response.token_ids_size(), 4);
    }
    return status;
  }

  // Starts a long request, waits for its first prefill progress event, then
  // signals worker `victim`; returns the request's final status and how long
  // after the signal it came.
  std::pair<grpc::Status, double> InterruptPrefill(int victim, int signal) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    auto reader = stub_->GenerateStream(&context, GreedyRequest(RandomPrompt(kPromptTokensPerWorker * workers_, 1024), 4));
    v1::GenerateStreamResponse event;
    bool prefilling = false;
    while (!prefilling && reader->Read(&event)) prefilling = event.has_progress();
    EXPECT_TRUE(prefilling) << "no prefill progress arrived";
    const pid_t pid = cluster_->worker_pid(victim);
    const auto signalled_at = std::chrono::steady_clock::now();
    EXPECT_EQ(kill(pid, signal), 0);
    while (reader->Read(&event)) {
    }
    const grpc::Status status = reader->Finish();
    return {status, std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled_at).count()};
  }

  int workers_ = 0;  // every visible GPU, at most kMaxWorkers
  std::string model_dir_;
  std::unique_ptr<LocalCluster> cluster_;
  std::unique_ptr<v1::Tessera::Stub> stub_;
};

TEST_F(NcclWorkerFailureTest, SilentPeerTimesOutThenAKilledRootFailsFastAndTheGroupReforms) {
  ASSERT_TRUE(Generate(workers_).ok());  // forms the NCCL group

  // The last rank stops answering mid-prefill: the others' collectives time out.
  const int last = workers_ - 1;
  auto [stalled, stalled_seconds] = InterruptPrefill(last, SIGSTOP);
  std::cout << workers_ << " workers, silent rank " << last << ": " << stalled.error_code() << " after "
            << stalled_seconds << " s: " << stalled.error_message() << "\n";
  EXPECT_EQ(stalled.error_code(), grpc::StatusCode::UNAVAILABLE) << stalled.error_message();
  EXPECT_LT(stalled_seconds, std::chrono::duration<double>(kFailWithin).count());
  ASSERT_TRUE(cluster_->RestartWorker(last).ok());  // kills the stopped process first
  ASSERT_TRUE(cluster_->WaitForWorkersReady(workers_, std::chrono::seconds(120)).ok());
  const grpc::Status after_stall = Generate(workers_);
  EXPECT_TRUE(after_stall.ok()) << after_stall.error_message();

  // Rank 0 (the group's bootstrap root) dies mid-prefill.
  auto [killed, killed_seconds] = InterruptPrefill(0, SIGKILL);
  std::cout << workers_ << " workers, killed rank 0: " << killed.error_code() << " after " << killed_seconds
            << " s: " << killed.error_message() << "\n";
  EXPECT_EQ(killed.error_code(), grpc::StatusCode::UNAVAILABLE) << killed.error_message();
  EXPECT_LT(killed_seconds, std::chrono::duration<double>(kFailWithin).count());
  ASSERT_TRUE(cluster_->RestartWorker(0).ok());
  ASSERT_TRUE(cluster_->WaitForWorkersReady(workers_, std::chrono::seconds(120)).ok());
  const grpc::Status after_kill = Generate(workers_);
  EXPECT_TRUE(after_kill.ok()) << after_kill.error_message();
}

}  // namespace
}  // namespace tessera
