// The request fields clients reach for first, through the real coordinator
// server (in-process, 127.0.0.1) against fake workers: stop strings (unary and
// streamed, across token and UTF-8 boundaries), logprobs and prompt_logprobs
// relayed, the new sampling fields and the penalty's prompt ids reaching the
// decoding worker, max_new_tokens 0, Abort of a running and of a waiting
// request (memory back to 0), priority order when the cluster is full, and the
// line's bounds.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <thread>

#include "coordinator/served_model.h"
#include "rpc/grpc_util.h"
#include "services/coordinator_service.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tests/coordinator/fake_text_model.h"
#include "tests/coordinator/fake_worker.h"
#include "tests/coordinator/utf8_check.h"

namespace tessera {
namespace {

using ::tessera::testing::FakeTextIds;
using ::tessera::testing::FakeTextModel;
using ::tessera::testing::FakeWorker;
using ::tessera::testing::FakeWorkerScript;
using ::tessera::testing::IsValidUtf8;
using ::tessera::testing::WaitUntil;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// The completion the fake worker produces, as text: emoji and CJK take several tokens each.
const std::string kCompletion = "Sure \xF0\x9F\x99\x82 \xE7\x8A\xB6\xE6\x80\x81 then STOP and more text";

CoordinatorOptions FastOptions() {
  CoordinatorOptions options;
  options.min_shard_tokens = 8;
  options.max_new_tokens_limit = 64;
  options.default_max_new_tokens = 40;
  options.health_interval = absl::Milliseconds(50);
  options.status_deadline = absl::Milliseconds(300);
  options.cancel_poll_interval = absl::Milliseconds(10);
  return options;
}

v1::GenerateRequest Prompt(int tokens, int max_new_tokens, int32_t first_id = 300) {
  v1::GenerateRequest request;
  for (int i = 0; i < tokens; ++i) request.add_prompt_token_ids(first_id + i % 100);
  request.mutable_stopping()->set_max_new_tokens(max_new_tokens);
  return request;
}

class GenerateApiTest : public ::testing::Test {
 protected:
  void StartCoordinator(const CoordinatorOptions& options = FastOptions(), int64_t max_context_tokens = 0) {
    ServedModel model = FakeTextModel();
    model.max_context_tokens = max_context_tokens;
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
        CoordinatorServer::Start("127.0.0.1:0", std::move(model), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Tessera::NewStub(MakeChannel(server_->address()));
  }

  FakeWorker* AddWorker(FakeWorkerScript script = {}) {
    script.vocab_size = 512;
    if (script.tokens == FakeWorkerScript().tokens) script.tokens = CompletionIds();
    std::unique_ptr<FakeWorker> worker = FakeWorker::Start(script);
    EXPECT_NE(worker, nullptr);
    EXPECT_TRUE(worker->RegisterWith(server_->internal_address()));
    workers_.push_back(std::move(worker));
    return workers_.back().get();
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    workers_.clear();
  }

  const Tokenizer& tokenizer() { return *server_->coordinator().model().tokenizer; }
  std::vector<int32_t> CompletionIds() { return FakeTextIds(kCompletion); }

  v1::ModelInfo ModelInfo() {
    grpc::ClientContext context;
    v1::ModelInfo info;
    EXPECT_TRUE(stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
    return info;
  }
  v1::ServerInfo ServerInfo() {
    grpc::ClientContext context;
    v1::ServerInfo info;
    EXPECT_TRUE(stub_->GetServerInfo(&context, v1::GetServerInfoRequest(), &info).ok());
    return info;
  }
  grpc::Status Generate(const v1::GenerateRequest& request, v1::GenerateResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    return stub_->Generate(&context, request, response);
  }
  // The deltas of a stream, then its summary.
  grpc::Status Stream(const v1::GenerateRequest& request, std::vector<v1::TokenDelta>* deltas,
                      v1::GenerateResponse* finished) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    auto reader = stub_->GenerateStream(&context, request);
    v1::GenerateStreamResponse event;
    while (reader->Read(&event)) {
      if (event.has_tokens()) deltas->push_back(event.tokens());
      if (event.has_finished()) *finished = event.finished();
    }
    return reader->Finish();
  }
  absl::StatusOr<int> Abort(const std::string& id) {
    grpc::ClientContext context;
    v1::AbortRequest request;
    request.set_request_id(id);
    v1::AbortResponse response;
    const grpc::Status status = stub_->Abort(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    return response.aborted();
  }
  // A coordinator whose one worker (100 tokens) is held by a running request
  // until Release(); `holder` ends with that request.
  FakeWorker* StartFullCluster(const CoordinatorOptions& options, std::thread& holder) {
    StartCoordinator(options);
    FakeWorkerScript script;
    script.capacity_tokens = 100;
    script.hold_last_shard = true;
    FakeWorker* worker = AddWorker(script);
    holder = std::thread([this] {
      v1::GenerateResponse response;
      EXPECT_TRUE(Generate(Prompt(50, 10), &response).ok());
    });
    EXPECT_TRUE(WaitUntil([&] { return worker->RunningShards() == 1; }));
    return worker;
  }

  bool AllMemoryFree() {
    const v1::ModelInfo info = ModelInfo();
    if (info.context_available_tokens() != info.context_capacity_tokens()) return false;
    const v1::ServerInfo server = ServerInfo();
    for (const v1::WorkerInfo& worker : server.workers()) {
      if (worker.memory_used_bytes() != 0 || worker.active_requests() != 0) return false;
    }
    return true;
  }

  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::Tessera::Stub> stub_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
};

TEST_F(GenerateApiTest, StopStringsEndUnaryAndStreamedRequestsAtTheCompletingToken) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  AddWorker();
  const std::vector<int32_t> ids = CompletionIds();
  struct Case {
    std::string stop;
    std::string text;
  };
  for (const Case& c : std::vector<Case>{{" STOP", "Sure \xF0\x9F\x99\x82 \xE7\x8A\xB6\xE6\x80\x81 then"},
                                         {"\x99\x82", ""},  // not a character: never matches (invalid alone)
                                         {"\xF0\x9F\x99\x82 \xE7\x8A\xB6", "Sure "},
                                         {"\xE6\x80\x81", "Sure \xF0\x9F\x99\x82 \xE7\x8A\xB6"}}) {
    SCOPED_TRACE(c.stop);
    v1::GenerateRequest request = Prompt(4, 60);
    request.mutable_stopping()->add_stop_strings(c.stop);
    v1::GenerateResponse unary;
    const grpc::Status status = Generate(request, &unary);
    if (c.text.empty()) {  // an invalid stop string
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(status.error_message(), HasSubstr("valid UTF-8"));
      continue;
    }
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(unary.finish_reason(), v1::FINISH_REASON_STOP_STRING);
    EXPECT_EQ(unary.text(), c.text);
    // token_ids end with the token that completed the match.
    ASSERT_GT(unary.token_ids_size(), 0);
    ASSERT_LE(unary.token_ids_size(), static_cast<int>(ids.size()));
    std::vector<int32_t> got(unary.token_ids().begin(), unary.token_ids().end());
    EXPECT_THAT(got, ElementsAreArray(ids.begin(), ids.begin() + got.size()));
    EXPECT_NE(tokenizer().Decode(got, true)->find(c.stop), std::string::npos);
    got.pop_back();
    EXPECT_EQ(tokenizer().Decode(got, true)->find(c.stop), std::string::npos);
    EXPECT_EQ(unary.usage().completion_tokens(), unary.token_ids_size());

    std::vector<v1::TokenDelta> deltas;
    v1::GenerateResponse finished;
    ASSERT_TRUE(Stream(request, &deltas, &finished).ok());
    std::string joined;
    int streamed_tokens = 0;
    for (const v1::TokenDelta& delta : deltas) {
      EXPECT_TRUE(IsValidUtf8(delta.text()));
      joined += delta.text();
      streamed_tokens += delta.token_ids_size();
    }
    EXPECT_EQ(joined, c.text);
    EXPECT_EQ(streamed_tokens, unary.token_ids_size());
    EXPECT_EQ(finished.finish_reason(), v1::FINISH_REASON_STOP_STRING);
    EXPECT_EQ(finished.usage().completion_tokens(), unary.token_ids_size());
  }
  EXPECT_TRUE(WaitUntil([&] { return AllMemoryFree(); }));
}

TEST_F(GenerateApiTest, LogprobsAndPromptLogprobsAreReturned) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  FakeWorker* worker = AddWorker();
  v1::GenerateRequest request = Prompt(5, 3);
  request.mutable_sampling()->set_logprobs(2);
  request.mutable_sampling()->set_prompt_logprobs(3);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(request, &response).ok());
  ASSERT_EQ(response.logprobs_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(response.logprobs(i).token_id(), response.token_ids(i));
    EXPECT_FLOAT_EQ(response.logprobs(i).logprob(), -(i + 1) / 4.0f);
    ASSERT_EQ(response.logprobs(i).top_size(), 2);
    EXPECT_EQ(response.logprobs(i).top(1).token_id(), 1);
  }
  // The fake's prompt rows are constant: every token is equally likely, and
  // ties among the alternatives go to the lower ids.
  ASSERT_EQ(response.prompt_logprobs_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(response.prompt_logprobs(i).token_id(), request.prompt_token_ids(i + 1));
    EXPECT_NEAR(response.prompt_logprobs(i).logprob(), -std::log(512.0), 1e-5);
    ASSERT_EQ(response.prompt_logprobs(i).top_size(), 3);
    EXPECT_EQ(response.prompt_logprobs(i).top(2).token_id(), 2);
  }
  EXPECT_FALSE(response.has_prompt_logits()) << "logits were asked of the workers, not by the client";
  EXPECT_FALSE(response.has_token_logits());
  ASSERT_EQ(worker->Requests().size(), 1u);
  EXPECT_TRUE(worker->Requests()[0].return_logits());
  EXPECT_EQ(worker->Requests()[0].sampling().logprobs(), 2);

  std::vector<v1::TokenDelta> deltas;
  v1::GenerateResponse finished;
  ASSERT_TRUE(Stream(request, &deltas, &finished).ok());
  int with_logprobs = 0;
  for (const v1::TokenDelta& delta : deltas) {
    EXPECT_EQ(delta.logprobs_size(), delta.token_ids_size());
    EXPECT_FALSE(delta.has_logits());
    with_logprobs += delta.logprobs_size();
  }
  EXPECT_EQ(with_logprobs, 3);
  EXPECT_EQ(finished.logprobs_size(), 0) << "the deltas carried them";
  EXPECT_EQ(finished.prompt_logprobs_size(), 4);
}

TEST_F(GenerateApiTest, AWorkerThatSendsNoLogprobsWhenAskedIsAnError) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  FakeWorkerScript script;
  script.omit_logprobs = true;
  AddWorker(script);
  v1::GenerateRequest request = Prompt(5, 3);
  request.mutable_sampling()->set_logprobs(0);
  v1::GenerateResponse response;
  const grpc::Status status = Generate(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("logprobs"));
}

TEST_F(GenerateApiTest, SamplingFieldsAndThePenaltysPromptIdsReachTheDecodingWorker) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  for (int w = 0; w < 3; ++w) AddWorker();
  v1::GenerateRequest request = Prompt(90, 4, 100);
  v1::SamplingParams& sampling = *request.mutable_sampling();
  sampling.set_temperature(0.8f);
  sampling.set_repetition_penalty(1.2f);
  sampling.set_presence_penalty(0.5f);
  sampling.set_frequency_penalty(-0.25f);
  sampling.set_min_p(0.05f);
  (*sampling.mutable_logit_bias())[7] = -100.0f;
  (*sampling.mutable_logit_bias())[9] = 3.5f;
  request.mutable_stopping()->set_min_tokens(2);
  request.mutable_stopping()->add_stop_strings("zzz");
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(request, &response).ok());
  ASSERT_GE(response.shards(), 2);
  std::vector<v1::RunShardRequest> shards;
  for (const auto& worker : workers_) {
    for (const v1::RunShardRequest& shard : worker->Requests()) shards.push_back(shard);
  }
  ASSERT_EQ(static_cast<int>(shards.size()), response.shards());
  for (const v1::RunShardRequest& shard : shards) {
    EXPECT_FLOAT_EQ(shard.sampling().repetition_penalty(), 1.2f);
    EXPECT_FLOAT_EQ(shard.sampling().presence_penalty(), 0.5f);
    EXPECT_FLOAT_EQ(shard.sampling().frequency_penalty(), -0.25f);
    EXPECT_FLOAT_EQ(shard.sampling().min_p(), 0.05f);
    EXPECT_EQ(shard.sampling().logit_bias().size(), 2u);
    EXPECT_EQ(shard.stopping().min_tokens(), 2);
    EXPECT_EQ(shard.stopping().stop_strings_size(), 0) << "stop strings are the coordinator's";
    EXPECT_FALSE(shard.return_logits());
    const bool last = shard.rank() == response.shards() - 1;
    if (!last) {
      EXPECT_EQ(shard.penalty_token_ids_size(), 0);
      continue;
    }
    // Every distinct prompt id before the last shard, once.
    std::set<int32_t> expected(request.prompt_token_ids().begin(),
                               request.prompt_token_ids().begin() + shard.shards(shard.rank()).token_begin());
    EXPECT_THAT(std::vector<int32_t>(shard.penalty_token_ids().begin(), shard.penalty_token_ids().end()),
                ElementsAreArray(expected.begin(), expected.end()));
  }
}

TEST_F(GenerateApiTest, MaxNewTokensZeroMeansTheContextLeftCappedByTheServerDefault) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(FastOptions(), /*max_context_tokens=*/100));
  FakeWorker* worker = AddWorker();
  EXPECT_EQ(ModelInfo().default_max_new_tokens(), 40);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(Prompt(10, 0), &response).ok());
  ASSERT_TRUE(Generate(Prompt(97, 0), &response).ok());
  ASSERT_EQ(worker->Requests().size(), 2u);
  EXPECT_EQ(worker->Requests()[0].stopping().max_new_tokens(), 40) << "the server's default";
  EXPECT_EQ(worker->Requests()[1].stopping().max_new_tokens(), 3) << "what the served context leaves";
  const grpc::Status full = Generate(Prompt(100, 0), &response);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(full.error_message(), HasSubstr("must be < 100"));
}

TEST_F(GenerateApiTest, AbortEndsARunningRequestAndFreesItsMemory) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  FakeWorkerScript script;
  script.hold_last_shard = true;
  FakeWorker* worker = AddWorker(script);
  v1::GenerateRequest request = Prompt(20, 10);
  request.set_request_id("client-42");
  grpc::Status status;
  v1::GenerateResponse response;
  std::thread running([&] { status = Generate(request, &response); });
  ASSERT_TRUE(WaitUntil([&] { return worker->RunningShards() == 1; }));
  EXPECT_FALSE(AllMemoryFree());
  EXPECT_EQ(Abort("someone-else").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<int> aborted = Abort("client-42");
  ASSERT_TRUE(aborted.ok()) << aborted.status();
  EXPECT_EQ(*aborted, 1);
  running.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.finish_reason(), v1::FINISH_REASON_ABORTED);
  EXPECT_EQ(response.request_id(), "client-42");
  EXPECT_TRUE(WaitUntil([&] { return worker->CancelledShards() == 1; }));
  EXPECT_TRUE(WaitUntil([&] { return AllMemoryFree(); }));
  EXPECT_EQ(Abort("client-42").status().code(), absl::StatusCode::kNotFound) << "it is gone";
}

TEST_F(GenerateApiTest, AbortEndsAWaitingRequest) {
  CoordinatorOptions options = FastOptions();
  options.max_queued_requests = 4;
  std::thread holder;
  FakeWorker* worker = StartFullCluster(options, holder);
  grpc::Status second_status;
  v1::GenerateResponse second;
  v1::GenerateRequest waiting = Prompt(50, 10);
  waiting.set_request_id("waiting-1");
  std::thread waiter([&] { second_status = Generate(waiting, &second); });
  ASSERT_TRUE(WaitUntil([&] { return ServerInfo().queued_requests() == 1; }));
  ASSERT_TRUE(Abort("waiting-1").ok());
  waiter.join();
  ASSERT_TRUE(second_status.ok()) << second_status.error_message();
  EXPECT_EQ(second.finish_reason(), v1::FINISH_REASON_ABORTED);
  EXPECT_EQ(second.token_ids_size(), 0);
  EXPECT_EQ(second.usage().prompt_tokens(), 50);
  EXPECT_EQ(ServerInfo().queued_requests(), 0);
  worker->Release();
  holder.join();
  EXPECT_EQ(worker->StartedShards(), 1) << "the aborted request never reached a worker";
  EXPECT_TRUE(WaitUntil([&] { return AllMemoryFree(); }));
}

TEST_F(GenerateApiTest, AFullClusterAdmitsWaitingRequestsByPriorityThenArrival) {
  CoordinatorOptions options = FastOptions();
  options.max_queued_requests = 3;
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(options));
  FakeWorkerScript script;
  script.capacity_tokens = 100;
  script.hold_last_shard = true;
  FakeWorker* worker = AddWorker(script);
  std::vector<std::thread> clients;
  std::vector<grpc::Status> statuses(5);
  std::vector<v1::GenerateResponse> responses(5);
  auto start = [&](int index, int32_t priority) {
    v1::GenerateRequest request = Prompt(50, 10, 100 * (index + 1));  // the first id names the request
    request.set_priority(priority);
    clients.emplace_back([&, index, request] { statuses[index] = Generate(request, &responses[index]); });
  };
  start(0, 0);
  ASSERT_TRUE(WaitUntil([&] { return worker->RunningShards() == 1; }));
  start(1, 5);
  ASSERT_TRUE(WaitUntil([&] { return ServerInfo().queued_requests() == 1; }));
  start(2, -3);
  ASSERT_TRUE(WaitUntil([&] { return ServerInfo().queued_requests() == 2; }));
  start(3, 5);
  ASSERT_TRUE(WaitUntil([&] { return ServerInfo().queued_requests() == 3; }));
  // A fourth would exceed the line.
  v1::GenerateResponse refused;
  const grpc::Status full = Generate(Prompt(50, 10, 1), &refused);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(full.error_message(), HasSubstr("--max-queued-requests 3"));
  worker->Release();
  for (std::thread& client : clients) client.join();
  std::vector<int32_t> order;
  for (const v1::RunShardRequest& call : worker->Requests()) order.push_back(call.token_ids(0) / 100 - 1);
  EXPECT_THAT(order, ElementsAre(0, 2, 1, 3)) << "priority -3 first, then the two 5s in arrival order";
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
  EXPECT_TRUE(WaitUntil([&] { return AllMemoryFree(); }));
}

TEST_F(GenerateApiTest, AWaitingRequestGivesUpAfterTheQueueTimeout) {
  CoordinatorOptions options = FastOptions();
  options.max_queued_requests = 2;
  options.queue_timeout = absl::Milliseconds(200);
  std::thread holder;
  FakeWorker* worker = StartFullCluster(options, holder);
  v1::GenerateResponse late;
  const grpc::Status status = Generate(Prompt(50, 10), &late);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("stayed full"));
  worker->Release();
  holder.join();
}

}  // namespace
}  // namespace tessera
