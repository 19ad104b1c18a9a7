// The coordinator's metrics through the real server against fake workers,
// read from the registry's objects (the HTTP side is the e2e test's): every
// way a request ends lands in its finish_reason, token counts are exact,
// latency histograms get one observation per request (inter-token: one per
// token after the first), the running/waiting gauges return to zero and the
// cluster gauges follow the workers.
#include "coordinator/coordinator_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "rpc/grpc_util.h"
#include "services/coordinator_service.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tests/coordinator/fake_worker.h"

namespace tessera {
namespace {

using ::tessera::testing::FakeWorker;
using ::tessera::testing::FakeWorkerScript;
using ::tessera::testing::WaitUntil;

uint64_t Count(prometheus::Histogram& histogram) { return histogram.Collect().histogram.sample_count; }

class CoordinatorMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    metrics_ = std::make_unique<CoordinatorMetrics>(*registry_);
  }

  void Start(const std::vector<FakeWorkerScript>& scripts) {
    CoordinatorOptions options;
    options.min_shard_tokens = 8;
    options.max_new_tokens_limit = 64;
    options.health_interval = absl::Milliseconds(50);
    options.cancel_poll_interval = absl::Milliseconds(10);
    options.metrics = metrics_.get();
    options.metrics_address = "127.0.0.1:9999";
    ServedModel model;
    model.model_type = "fake";
    model.vocab_size = 64;
    model.num_layers = 4;
    model.eos_token_id = 2;
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
        CoordinatorServer::Start("127.0.0.1:0", model, options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Tessera::NewStub(MakeChannel(server_->address()));
    for (const FakeWorkerScript& script : scripts) {
      workers_.push_back(FakeWorker::Start(script));
      ASSERT_NE(workers_.back(), nullptr);
      ASSERT_TRUE(workers_.back()->RegisterWith(server_->internal_address()));
    }
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    workers_.clear();
  }

  grpc::Status Generate(int prompt_tokens, int max_new_tokens, v1::GenerateResponse* response = nullptr) {
    v1::GenerateRequest request;
    for (int i = 0; i < prompt_tokens; ++i) request.add_prompt_token_ids(3 + i % 60);
    request.mutable_stopping()->set_max_new_tokens(max_new_tokens);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GenerateResponse ignored;
    return stub_->Generate(&context, request, response != nullptr ? response : &ignored);
  }

  v1::ModelInfo ModelInfo() {
    grpc::ClientContext context;
    v1::ModelInfo info;
    EXPECT_TRUE(stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
    return info;
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::Tessera::Stub> stub_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
};

TEST_F(CoordinatorMetricsTest, ACompletedRequestCountsItsTokensAndLatencies) {
  Start({{}, {}});
  CoordinatorMetrics& m = *metrics_;
  ASSERT_TRUE(Generate(16, 5).ok());
  EXPECT_EQ(m.requests_length.Value(), 1);
  EXPECT_EQ(m.prompt_tokens.Value(), 16);
  EXPECT_EQ(m.generation_tokens.Value(), 5);
  EXPECT_EQ(Count(m.time_to_first_token_seconds), 1u);
  EXPECT_EQ(Count(m.inter_token_latency_seconds), 4u);
  EXPECT_EQ(Count(m.request_duration_seconds), 1u);
  EXPECT_EQ(Count(m.request_queue_time_seconds), 1u);
  EXPECT_EQ(m.requests_running.Value(), 0);
  EXPECT_EQ(m.requests_waiting.Value(), 0);
  EXPECT_EQ(m.requests_rejected.Value(), 0);

  ASSERT_TRUE(Generate(4, 3).ok());
  EXPECT_EQ(m.requests_length.Value(), 2);
  EXPECT_EQ(m.prompt_tokens.Value(), 20);
  EXPECT_EQ(m.generation_tokens.Value(), 8);
  EXPECT_EQ(Count(m.inter_token_latency_seconds), 6u);
}

TEST_F(CoordinatorMetricsTest, EveryWayARequestEndsHasItsReason) {
  FakeWorkerScript eos;
  eos.finish_reason = v1::FINISH_REASON_EOS;
  FakeWorkerScript failing;
  failing.fail_after_prefill = true;
  failing.fail_after_prefill_code = grpc::StatusCode::INTERNAL;  // UNAVAILABLE would be retried elsewhere
  Start({eos, failing});
  CoordinatorMetrics& m = *metrics_;

  EXPECT_EQ(Generate(4, -1).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Generate(4, 2).error_code(), grpc::StatusCode::OK);            // one shard, on the first worker
  EXPECT_EQ(Generate(16, 2).error_code(), grpc::StatusCode::INTERNAL);  // the last shard fails
  EXPECT_EQ(m.requests_rejected.Value(), 1);
  EXPECT_EQ(m.requests_eos.Value(), 1);
  EXPECT_EQ(m.requests_error.Value(), 1);
  EXPECT_EQ(m.requests_length.Value() + m.requests_stop_token.Value() + m.requests_cancelled.Value(), 0);
  EXPECT_EQ(Count(m.request_duration_seconds), 2u) << "rejected requests have no duration";
  EXPECT_EQ(Count(m.request_queue_time_seconds), 2u);
  EXPECT_EQ(m.requests_running.Value(), 0);
  EXPECT_EQ(m.requests_waiting.Value(), 0);
}

TEST_F(CoordinatorMetricsTest, ACancelledStreamIsCancelledAndRunsWhileItRuns) {
  FakeWorkerScript holding;
  holding.hold_last_shard = true;
  Start({holding});
  CoordinatorMetrics& m = *metrics_;
  const double capacity = m.context_capacity_tokens.Value();
  EXPECT_EQ(capacity, ModelInfo().context_capacity_tokens());
  EXPECT_EQ(m.context_available_tokens.Value(), capacity);
  EXPECT_EQ(m.workers_ready.Value(), 1);

  v1::GenerateRequest request;
  for (int i = 0; i < 10; ++i) request.add_prompt_token_ids(5);
  request.mutable_stopping()->set_max_new_tokens(10);
  grpc::ClientContext context;
  auto reader = stub_->GenerateStream(&context, request);
  ASSERT_TRUE(WaitUntil([&] { return workers_[0]->RunningShards() == 1; }));
  EXPECT_EQ(m.requests_running.Value(), 1);
  EXPECT_LT(m.context_available_tokens.Value(), capacity) << "admission reserved room";
  context.TryCancel();
  v1::GenerateStreamResponse message;
  while (reader->Read(&message)) {
  }
  reader->Finish();
  ASSERT_TRUE(WaitUntil([&] { return m.requests_running.Value() == 0; }));
  EXPECT_EQ(m.requests_cancelled.Value(), 1);
  EXPECT_EQ(m.context_available_tokens.Value(), capacity);
}

TEST_F(CoordinatorMetricsTest, ClusterGaugesFollowTheWorkersAndServerInfoNamesTheMetrics) {
  Start({{}, {}});
  CoordinatorMetrics& m = *metrics_;
  EXPECT_EQ(m.workers_ready.Value(), 2);
  EXPECT_EQ(m.context_capacity_tokens.Value(), ModelInfo().context_capacity_tokens());
  grpc::ClientContext context;
  v1::ServerInfo info;
  ASSERT_TRUE(stub_->GetServerInfo(&context, v1::GetServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.metrics_address(), "127.0.0.1:9999");
  ASSERT_EQ(info.workers_size(), 2);
  for (int w = 0; w < 2; ++w) EXPECT_EQ(info.workers(w).metrics_address(), workers_[w]->Status().metrics_address());

  workers_[1]->SetAnswersStatus(false);
  EXPECT_TRUE(WaitUntil([&] { return m.workers_ready.Value() == 1; }));
  EXPECT_EQ(m.context_capacity_tokens.Value(), ModelInfo().context_capacity_tokens());
}

}  // namespace
}  // namespace tessera
