// NCCL groups through the real coordinator server against fake workers: when
// a request uses NCCL (--peer-transport, what the workers offer, shard
// count), that every rank gets the same group and the unique id its rank-0
// worker created, that groups are reused and dropped when they must be, and
// that NCCL prefills run one at a time while gRPC ones do not.
#include "coordinator/nccl_groups.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "coordinator/coordinator_metrics.h"
#include "rpc/grpc_util.h"
#include "services/coordinator_service.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tests/coordinator/fake_worker.h"

namespace tessera {
namespace {

using ::tessera::testing::FakeShardCall;
using ::tessera::testing::FakeWorker;
using ::tessera::testing::FakeWorkerScript;
using ::tessera::testing::WaitUntil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

CoordinatorOptions FastOptions(PeerTransportMode mode = PeerTransportMode::kAuto) {
  CoordinatorOptions options;
  options.min_shard_tokens = 8;
  options.max_new_tokens_limit = 64;
  options.health_interval = absl::Milliseconds(50);
  options.status_deadline = absl::Milliseconds(300);
  options.cancel_poll_interval = absl::Milliseconds(10);
  options.peer_transport = mode;
  return options;
}

FakeWorkerScript NcclScript() {
  FakeWorkerScript script;
  script.backend = "cuda";
  script.peer_transports = {"grpc", "nccl"};
  return script;
}

v1::GenerateRequest Prompt(int tokens, int max_new_tokens) {
  v1::GenerateRequest request;
  for (int i = 0; i < tokens; ++i) request.add_prompt_token_ids(3 + i % 60);
  request.mutable_stopping()->set_max_new_tokens(max_new_tokens);
  return request;
}

class NcclGroupsTest : public ::testing::Test {
 protected:
  void StartCoordinator(CoordinatorOptions options = FastOptions()) {
    registry_ = std::make_shared<prometheus::Registry>();
    metrics_ = std::make_unique<CoordinatorMetrics>(*registry_);
    options.metrics = metrics_.get();
    ServedModel model;
    model.model_type = "fake";
    model.vocab_size = 64;
    model.num_layers = 4;
    model.eos_token_id = 2;
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
        CoordinatorServer::Start("127.0.0.1:0", std::move(model), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Tessera::NewStub(MakeChannel(server_->address()));
  }

  // Starts a fake worker, registers it and waits until the coordinator counts
  // it ready (registration checks it at once, but a check that misses its
  // deadline on a loaded machine leaves it to the next health check).
  FakeWorker* AddWorker(const FakeWorkerScript& script = NcclScript()) {
    std::unique_ptr<FakeWorker> worker = FakeWorker::Start(script);
    EXPECT_NE(worker, nullptr);
    EXPECT_TRUE(worker->RegisterWith(server_->internal_address()));
    workers_.push_back(std::move(worker));
    const int want = static_cast<int>(workers_.size());
    EXPECT_TRUE(WaitUntil([&] { return WorkersReady() >= want; })) << "worker " << want - 1 << " never got ready";
    return workers_.back().get();
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    workers_.clear();
  }

  grpc::Status Generate(const v1::GenerateRequest& request, absl::Duration timeout = absl::Seconds(10)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    v1::GenerateResponse response;
    return stub_->Generate(&context, request, &response);
  }

  v1::ServerInfo ServerInfo() {
    grpc::ClientContext context;
    v1::ServerInfo info;
    EXPECT_TRUE(stub_->GetServerInfo(&context, v1::GetServerInfoRequest(), &info).ok());
    return info;
  }

  int WorkersReady() {
    grpc::ClientContext context;
    v1::ModelInfo info;
    EXPECT_TRUE(stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
    return info.workers_ready();
  }

  // The nccl field of the latest RunShard call of each of the first `n` workers.
  std::vector<v1::NcclGroup> LatestGroups(int n) {
    std::vector<v1::NcclGroup> groups;
    for (int w = 0; w < n; ++w) {
      const std::vector<v1::RunShardRequest> requests = workers_[w]->Requests();
      EXPECT_FALSE(requests.empty()) << "worker " << w;
      if (requests.empty()) continue;
      EXPECT_TRUE(requests.back().has_nccl()) << "worker " << w;
      groups.push_back(requests.back().nccl());
    }
    return groups;
  }

  bool AnyNccl() {
    for (const auto& worker : workers_) {
      for (const v1::RunShardRequest& request : worker->Requests()) {
        if (request.has_nccl()) return true;
      }
    }
    return false;
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::Tessera::Stub> stub_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
};

TEST_F(NcclGroupsTest, EveryRankGetsTheGroupAndTheIdItsRankZeroCreated) {
  StartCoordinator();
  for (int w = 0; w < 3; ++w) AddWorker();

  ASSERT_TRUE(Generate(Prompt(24, 2)).ok());  // 3 shards
  std::vector<v1::NcclGroup> groups = LatestGroups(3);
  ASSERT_EQ(groups.size(), 3u);
  ASSERT_EQ(workers_[0]->NcclUniqueIds().size(), 1u);
  const v1::NcclGroup three = groups[0];
  EXPECT_FALSE(three.group_id().empty());
  EXPECT_EQ(three.unique_id(), workers_[0]->NcclUniqueIds()[0]);
  EXPECT_EQ(three.unique_id().size(), 128u);
  for (const v1::NcclGroup& group : groups) {
    EXPECT_EQ(group.group_id(), three.group_id());
    EXPECT_EQ(group.unique_id(), three.unique_id());
  }
  EXPECT_TRUE(workers_[1]->NcclUniqueIds().empty());
  EXPECT_TRUE(workers_[2]->NcclUniqueIds().empty());

  // Two shards over the first two workers: another group, another id from rank 0.
  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  groups = LatestGroups(2);
  ASSERT_EQ(groups.size(), 2u);
  ASSERT_EQ(workers_[0]->NcclUniqueIds().size(), 2u);
  EXPECT_NE(groups[0].group_id(), three.group_id());
  EXPECT_EQ(groups[0].unique_id(), workers_[0]->NcclUniqueIds()[1]);
  EXPECT_NE(groups[0].unique_id(), three.unique_id());
  EXPECT_EQ(groups[1].group_id(), groups[0].group_id());
  EXPECT_EQ(groups[1].unique_id(), groups[0].unique_id());

  // The same three workers again: the same group and id, no new id.
  ASSERT_TRUE(Generate(Prompt(30, 2)).ok());
  groups = LatestGroups(3);
  ASSERT_EQ(groups.size(), 3u);
  for (const v1::NcclGroup& group : groups) {
    EXPECT_EQ(group.group_id(), three.group_id());
    EXPECT_EQ(group.unique_id(), three.unique_id());
  }
  EXPECT_EQ(workers_[0]->NcclUniqueIds().size(), 2u);

  const v1::ServerInfo info = ServerInfo();
  EXPECT_EQ(info.peer_transport(), "auto");
  EXPECT_EQ(info.nccl_groups(), 2);
  ASSERT_EQ(info.workers_size(), 3);
  EXPECT_EQ(info.workers(0).backend(), "cuda");
  EXPECT_THAT(info.workers(0).peer_transports(), ElementsAre("grpc", "nccl"));
  EXPECT_EQ(metrics_->nccl_groups_formed.Value(), 2);
}

TEST_F(NcclGroupsTest, AShardFailingInPrefillMakesTheNextRequestFormANewGroup) {
  StartCoordinator();
  AddWorker();
  AddWorker();
  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  const v1::NcclGroup first = LatestGroups(2)[0];

  workers_[1]->FailNextShardInPrefill(grpc::StatusCode::INTERNAL);
  const grpc::Status failed = Generate(Prompt(16, 2));
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::INTERNAL) << failed.error_message();
  EXPECT_EQ(LatestGroups(2)[1].group_id(), first.group_id()) << "the failed request ran on the group";
  EXPECT_EQ(ServerInfo().nccl_groups(), 0) << "dropped";

  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  const std::vector<v1::NcclGroup> groups = LatestGroups(2);
  ASSERT_EQ(workers_[0]->NcclUniqueIds().size(), 2u);
  EXPECT_NE(groups[0].group_id(), first.group_id());
  EXPECT_NE(groups[0].unique_id(), first.unique_id());
  EXPECT_EQ(groups[0].unique_id(), workers_[0]->NcclUniqueIds()[1]);
  EXPECT_EQ(groups[1].group_id(), groups[0].group_id());
  EXPECT_EQ(groups[1].unique_id(), groups[0].unique_id());
}

TEST_F(NcclGroupsTest, CancellationDropsTheGroupOnlyBeforeEveryShardIsPrefilled) {
  StartCoordinator();
  FakeWorkerScript holding = NcclScript();
  holding.hold_prefill = true;
  holding.hold_last_shard = true;
  FakeWorker* first = AddWorker(holding);
  FakeWorker* last = AddWorker(holding);

  // Cancelled while both shards hold their prefill: the group goes.
  {
    grpc::ClientContext context;
    auto reader = stub_->GenerateStream(&context, Prompt(16, 2));
    ASSERT_TRUE(WaitUntil([&] { return first->RunningShards() == 1 && last->RunningShards() == 1; }));
    context.TryCancel();
    v1::GenerateStreamResponse message;
    while (reader->Read(&message)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  ASSERT_TRUE(WaitUntil([&] { return ServerInfo().running_requests() == 0; }));
  EXPECT_EQ(ServerInfo().nccl_groups(), 0);
  EXPECT_EQ(first->NcclUniqueIds().size(), 1u);

  // Cancelled while decoding (every shard prefilled): the group stays.
  first->ReleasePrefill();
  last->ReleasePrefill();
  grpc::ClientContext context;
  auto reader = stub_->GenerateStream(&context, Prompt(16, 2));
  ASSERT_TRUE(WaitUntil([&] { return first->StartedShards() == 2 && last->StartedShards() == 2; }));
  grpc::Status next;
  std::thread next_request([&] { next = Generate(Prompt(17, 2)); });
  // Its calls go out only once the coordinator saw every shard of the first `prefilled`.
  ASSERT_TRUE(WaitUntil([&] { return first->StartedShards() == 3 && last->StartedShards() == 3; }));
  context.TryCancel();
  v1::GenerateStreamResponse message;
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  last->Release();
  next_request.join();
  EXPECT_TRUE(next.ok()) << next.error_message();
  EXPECT_EQ(ServerInfo().nccl_groups(), 1);
  const v1::NcclGroup kept = first->Calls()[1].request.nccl();
  EXPECT_EQ(first->Calls()[2].request.nccl().group_id(), kept.group_id());

  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  EXPECT_EQ(LatestGroups(2)[0].group_id(), kept.group_id());
  EXPECT_EQ(first->NcclUniqueIds().size(), 2u);
}

TEST_F(NcclGroupsTest, AutoUsesGrpcWhenAWorkerDoesNotOfferNccl) {
  StartCoordinator();
  AddWorker();
  AddWorker(FakeWorkerScript());  // grpc only
  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  EXPECT_EQ(workers_[0]->StartedShards(), 1);
  EXPECT_EQ(workers_[1]->StartedShards(), 1);
  EXPECT_FALSE(AnyNccl());
  EXPECT_TRUE(workers_[0]->NcclUniqueIds().empty());
}

TEST_F(NcclGroupsTest, RequiredNcclFailsNamingTheWorkerWithoutIt) {
  StartCoordinator(FastOptions(PeerTransportMode::kNccl));
  AddWorker();
  FakeWorker* grpc_only = AddWorker(FakeWorkerScript());
  const grpc::Status status = Generate(Prompt(16, 2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(grpc_only->address()));
  EXPECT_THAT(status.error_message(), HasSubstr("(shard 2 of 2) does not offer the nccl peer transport"));
  EXPECT_EQ(workers_[0]->StartedShards(), 0);
  EXPECT_EQ(grpc_only->StartedShards(), 0);
  EXPECT_TRUE(workers_[0]->NcclUniqueIds().empty());
  // One shard exchanges nothing: it runs, without NCCL.
  ASSERT_TRUE(Generate(Prompt(5, 2)).ok());
  EXPECT_FALSE(AnyNccl());
  EXPECT_EQ(ServerInfo().peer_transport(), "nccl");
}

TEST_F(NcclGroupsTest, WorkersSharingAGpuExchangeOverGrpc) {
  FakeWorkerScript same_gpu = NcclScript();
  same_gpu.device_id = "GPU-0000aaaa-0000-0000-0000-000000000001";
  StartCoordinator();
  AddWorker(same_gpu);
  AddWorker(same_gpu);
  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  EXPECT_EQ(workers_[0]->StartedShards(), 1);
  EXPECT_EQ(workers_[1]->StartedShards(), 1);
  EXPECT_FALSE(AnyNccl());
  EXPECT_TRUE(workers_[0]->NcclUniqueIds().empty());
}

TEST_F(NcclGroupsTest, RequiredNcclOnOneSharedGpuFailsNamingBothWorkers) {
  FakeWorkerScript same_gpu = NcclScript();
  same_gpu.device_id = "GPU-0000aaaa-0000-0000-0000-000000000001";
  StartCoordinator(FastOptions(PeerTransportMode::kNccl));
  FakeWorker* first = AddWorker(same_gpu);
  FakeWorker* second = AddWorker(same_gpu);
  const grpc::Status status = Generate(Prompt(16, 2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(first->address()));
  EXPECT_THAT(status.error_message(), HasSubstr(second->address()));
  EXPECT_THAT(status.error_message(), HasSubstr("share GPU " + same_gpu.device_id));
  EXPECT_EQ(first->StartedShards(), 0);
}

TEST_F(NcclGroupsTest, WorkersOnTwoGpusFormAGroup) {
  StartCoordinator();
  for (const char* id : {"GPU-0000aaaa-0000-0000-0000-000000000001", "GPU-0000aaaa-0000-0000-0000-000000000002"}) {
    FakeWorkerScript script = NcclScript();
    script.device_id = id;
    AddWorker(script);
  }
  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  EXPECT_TRUE(AnyNccl());
}

TEST_F(NcclGroupsTest, GrpcModeNeverUsesNccl) {
  StartCoordinator(FastOptions(PeerTransportMode::kGrpc));
  for (int w = 0; w < 3; ++w) AddWorker();
  ASSERT_TRUE(Generate(Prompt(24, 2)).ok());
  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  EXPECT_EQ(workers_[2]->StartedShards(), 1);
  EXPECT_FALSE(AnyNccl());
  EXPECT_TRUE(workers_[0]->NcclUniqueIds().empty());
  EXPECT_EQ(ServerInfo().peer_transport(), "grpc");
  EXPECT_EQ(ServerInfo().nccl_groups(), 0);
}

TEST_F(NcclGroupsTest, OneShardNeverUsesNccl) {
  StartCoordinator(FastOptions(PeerTransportMode::kNccl));
  AddWorker();
  AddWorker();
  ASSERT_TRUE(Generate(Prompt(15, 2)).ok());  // below 2 × min_shard_tokens
  EXPECT_EQ(workers_[0]->StartedShards(), 1);
  EXPECT_EQ(workers_[1]->StartedShards(), 0);
  EXPECT_FALSE(AnyNccl());
  EXPECT_TRUE(workers_[0]->NcclUniqueIds().empty());
}

TEST_F(NcclGroupsTest, AFailedUniqueIdIsUnavailableNamingTheRankZeroWorker) {
  StartCoordinator();
  FakeWorker* root = AddWorker();
  AddWorker();
  root->SetAnswersNcclUniqueId(false);
  const grpc::Status status = Generate(Prompt(16, 2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(root->address()));
  EXPECT_THAT(status.error_message(), HasSubstr("NCCL unique id"));
  EXPECT_EQ(root->StartedShards(), 0);
  EXPECT_EQ(workers_[1]->StartedShards(), 0);
  EXPECT_EQ(ServerInfo().nccl_groups(), 0);

  root->SetAnswersNcclUniqueId(true);
  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  EXPECT_EQ(LatestGroups(2)[1].unique_id(), root->NcclUniqueIds()[0]);
}

TEST_F(NcclGroupsTest, NcclPrefillsRunOneAtATime) {
  StartCoordinator();
  FakeWorkerScript holding = NcclScript();
  holding.hold_prefill = true;
  FakeWorker* first = AddWorker(holding);
  FakeWorker* last = AddWorker(holding);

  grpc::Status a, b;
  std::thread request_a([&] { a = Generate(Prompt(16, 2)); });
  ASSERT_TRUE(WaitUntil([&] { return first->StartedShards() == 1 && last->StartedShards() == 1; }));
  std::thread request_b([&] { b = Generate(Prompt(17, 2)); });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(first->StartedShards(), 1) << "B's calls wait for A's prefill";
  EXPECT_EQ(last->StartedShards(), 1);

  first->ReleasePrefill();  // A's shard 1 reports `prefilled`; its shard 2 still holds
  ASSERT_TRUE(WaitUntil([&] { return first->Calls()[0].prefilled != absl::InfiniteFuture(); }));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(first->StartedShards(), 1) << "one shard of A prefilled is not enough";
  EXPECT_EQ(last->StartedShards(), 1);

  last->ReleasePrefill();
  request_a.join();
  request_b.join();
  ASSERT_TRUE(a.ok()) << a.error_message();
  ASSERT_TRUE(b.ok()) << b.error_message();
  const std::vector<FakeShardCall> first_calls = first->Calls(), last_calls = last->Calls();
  ASSERT_EQ(first_calls.size(), 2u);
  ASSERT_EQ(last_calls.size(), 2u);
  const absl::Time a_prefilled = std::max(first_calls[0].prefilled, last_calls[0].prefilled);
  EXPECT_GE(first_calls[1].arrived, a_prefilled);
  EXPECT_GE(last_calls[1].arrived, a_prefilled);
  EXPECT_EQ(first_calls[1].request.nccl().group_id(), first_calls[0].request.nccl().group_id());
}

TEST_F(NcclGroupsTest, GrpcPrefillsAreNotSerialized) {
  StartCoordinator(FastOptions(PeerTransportMode::kGrpc));
  FakeWorkerScript holding = NcclScript();
  holding.hold_prefill = true;
  FakeWorker* first = AddWorker(holding);
  FakeWorker* last = AddWorker(holding);
  grpc::Status a, b;
  std::thread request_a([&] { a = Generate(Prompt(16, 2)); });
  std::thread request_b([&] { b = Generate(Prompt(17, 2)); });
  EXPECT_TRUE(WaitUntil([&] { return first->StartedShards() == 2 && last->StartedShards() == 2; }));
  first->ReleasePrefill();
  last->ReleasePrefill();
  request_a.join();
  request_b.join();
  EXPECT_TRUE(a.ok()) << a.error_message();
  EXPECT_TRUE(b.ok()) << b.error_message();
}

TEST_F(NcclGroupsTest, WaitingForTheTurnEndsAtTheDeadline) {
  StartCoordinator();
  FakeWorkerScript holding = NcclScript();
  holding.hold_prefill = true;
  FakeWorker* first = AddWorker(holding);
  FakeWorker* last = AddWorker(holding);
  grpc::Status a;
  std::thread request_a([&] { a = Generate(Prompt(16, 2)); });
  ASSERT_TRUE(WaitUntil([&] { return first->StartedShards() == 1 && last->StartedShards() == 1; }));

  const absl::Time start = absl::Now();
  const grpc::Status b = Generate(Prompt(17, 2), absl::Milliseconds(300));
  EXPECT_EQ(b.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << b.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(first->StartedShards(), 1);
  EXPECT_EQ(last->StartedShards(), 1);
  EXPECT_EQ(ServerInfo().nccl_groups(), 1) << "B never touched A's group";

  first->ReleasePrefill();
  last->ReleasePrefill();
  request_a.join();
  EXPECT_TRUE(a.ok()) << a.error_message();
}

TEST_F(NcclGroupsTest, AWorkerThatLeavesTakesItsGroupsWithIt) {
  StartCoordinator();
  AddWorker();
  FakeWorker* flaky = AddWorker();
  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  const v1::NcclGroup before = LatestGroups(2)[0];
  EXPECT_EQ(ServerInfo().nccl_groups(), 1);

  flaky->SetAnswersStatus(false);
  ASSERT_TRUE(WaitUntil([&] { return WorkersReady() == 1; }));
  EXPECT_TRUE(WaitUntil([&] { return ServerInfo().nccl_groups() == 0; }));

  // Back at the same address: the same workers in the same order form a new group.
  flaky->SetAnswersStatus(true);
  ASSERT_TRUE(flaky->RegisterWith(server_->internal_address()));
  ASSERT_EQ(WorkersReady(), 2);
  ASSERT_TRUE(Generate(Prompt(16, 2)).ok());
  const v1::NcclGroup after = LatestGroups(2)[0];
  EXPECT_NE(after.group_id(), before.group_id());
  EXPECT_NE(after.unique_id(), before.unique_id());
  EXPECT_EQ(workers_[0]->NcclUniqueIds().size(), 2u);
}

TEST(PeerTransportModeTest, ParsesItsNamesAndQuotesTheChoices) {
  for (PeerTransportMode mode : {PeerTransportMode::kAuto, PeerTransportMode::kGrpc, PeerTransportMode::kNccl}) {
    absl::StatusOr<PeerTransportMode> parsed = ParsePeerTransportMode(PeerTransportModeName(mode));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, mode);
  }
  const absl::StatusOr<PeerTransportMode> bad = ParsePeerTransportMode("rdma");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("must be auto, grpc or nccl. Given: rdma"));
}

}  // namespace
}  // namespace tessera
