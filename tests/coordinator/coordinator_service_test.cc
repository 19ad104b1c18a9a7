// The real coordinator server, in-process on 127.0.0.1, against fake workers:
// validation, admission and reservations, shard execution and relay,
// failures, cancellation, and worker health.
#include "services/coordinator_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "common/striped_rounds.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tests/coordinator/fake_worker.h"

namespace tessera {
namespace {

using ::tessera::testing::FakeWorker;
using ::tessera::testing::FakeWorkerScript;
using ::tessera::testing::kFakeKvBytesPerToken;
using ::tessera::testing::kFakeStateBytes;
using ::tessera::testing::WaitUntil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int32_t kPeerTimeoutMs = 1234;

CoordinatorOptions FastOptions() {
  CoordinatorOptions options;
  options.min_shard_tokens = 8;
  options.max_new_tokens_limit = 64;
  options.peer_timeout_ms = kPeerTimeoutMs;
  options.health_interval = absl::Milliseconds(50);
  options.status_deadline = absl::Milliseconds(300);
  options.forget_after = absl::Seconds(10);
  options.cancel_poll_interval = absl::Milliseconds(10);
  return options;
}

ServedModel FakeModel() {
  ServedModel model;
  model.model_type = "fake";
  model.model_path = "/nowhere/fake";
  model.vocab_size = 64;
  model.num_layers = 4;
  model.eos_token_id = 2;
  return model;
}

v1::GenerateRequest Prompt(int tokens, int max_new_tokens) {
  v1::GenerateRequest request;
  for (int i = 0; i < tokens; ++i) request.add_prompt_token_ids(3 + i % 60);
  request.mutable_stopping()->set_max_new_tokens(max_new_tokens);
  return request;
}

class CoordinatorServiceTest : public ::testing::Test {
 protected:
  void StartCoordinator(const CoordinatorOptions& options = FastOptions(), const ServedModel& model = FakeModel()) {
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server = CoordinatorServer::Start("127.0.0.1:0", model, options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Tessera::NewStub(MakeChannel(server_->address()));
  }

  // Starts a fake worker and registers it (registration checks it at once).
  FakeWorker* AddWorker(const FakeWorkerScript& script = {}) {
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

  grpc::Status Generate(const v1::GenerateRequest& request, v1::GenerateResponse* response,
                        absl::Duration timeout = absl::Seconds(10)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return stub_->Generate(&context, request, response);
  }

  bool AllMemoryFree() {
    const v1::ModelInfo info = ModelInfo();
    return info.context_available_tokens() == info.context_capacity_tokens();
  }

  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::Tessera::Stub> stub_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
};

void ExpectInvalid(const grpc::Status& status, const std::string& fragment) {
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(fragment));
}

TEST_F(CoordinatorServiceTest, RejectsInvalidRequestsQuotingTheLimit) {
  StartCoordinator();
  FakeWorkerScript script;
  script.capacity_tokens = 100;
  AddWorker(script);
  AddWorker(script);
  v1::GenerateResponse response;

  ExpectInvalid(Generate(Prompt(0, 4), &response), "the prompt is empty: give prompt_token_ids");
  v1::GenerateRequest request = Prompt(5, 4);
  request.set_prompt_token_ids(3, 64);
  ExpectInvalid(Generate(request, &response), "prompt_token_ids[3] must be in [0, 64) (the model's vocab_size is 64)");
  ExpectInvalid(Generate(Prompt(5, -1), &response), "max_new_tokens must be >= 0 (0: up to the served context, at most the server's default). Given: -1");
  ExpectInvalid(Generate(Prompt(5, 65), &response), "max_new_tokens must be <= 64. Given: 65");
  request = Prompt(5, 4);
  request.mutable_sampling()->set_top_p(2.0f);
  ExpectInvalid(Generate(request, &response), "top_p must be in [0, 1]. Given: 2");
  ExpectInvalid(Generate(Prompt(190, 20), &response),
                "prompt_tokens + max_new_tokens must be <= 200 (the context capacity of the 2 ready workers). "
                "Given: 190 + 20 = 210");
  for (const auto& worker : workers_) EXPECT_EQ(worker->StartedShards(), 0);
}

TEST_F(CoordinatorServiceTest, NoReadyWorkerIsUnavailable) {
  StartCoordinator();
  v1::GenerateResponse response;
  EXPECT_EQ(Generate(Prompt(5, 4), &response).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ModelInfo().workers_ready(), 0);
}

TEST_F(CoordinatorServiceTest, GenerateReturnsTheLastShardsTokensAndUsage) {
  StartCoordinator();
  AddWorker();
  AddWorker();
  v1::GenerateRequest request = Prompt(16, 5);
  request.set_request_id("mine");
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(request, &response).ok());
  EXPECT_EQ(response.request_id(), "mine");
  EXPECT_THAT(response.token_ids(), ElementsAre(11, 12, 13, 14, 15));
  EXPECT_EQ(response.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(response.usage().prompt_tokens(), 16);
  EXPECT_EQ(response.usage().completion_tokens(), 5);
  EXPECT_EQ(response.usage().total_tokens(), 21);
  EXPECT_EQ(response.shards(), 2);
  EXPECT_FALSE(response.has_prompt_logits());
}

TEST_F(CoordinatorServiceTest, GenerateStreamRelaysProgressThenTokensThenFinished) {
  StartCoordinator();
  AddWorker();
  AddWorker();
  v1::GenerateRequest request = Prompt(16, 5);
  request.set_request_id("stream-1");
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::GenerateStreamResponse>> reader = stub_->GenerateStream(&context, request);
  std::vector<v1::GenerateStreamResponse> messages;
  v1::GenerateStreamResponse message;
  while (reader->Read(&message)) messages.push_back(message);
  ASSERT_TRUE(reader->Finish().ok());

  ASSERT_GE(messages.size(), 3u);
  int last_layers_done = -1;
  std::vector<int32_t> tokens;
  size_t i = 0;
  for (; i < messages.size() && messages[i].has_progress(); ++i) {
    const v1::PrefillProgress& progress = messages[i].progress();
    EXPECT_GT(progress.layers_done(), last_layers_done);
    EXPECT_EQ(progress.layers_total(), 4);
    EXPECT_EQ(progress.prompt_tokens(), 16);
    EXPECT_EQ(progress.shards(), 2);
    last_layers_done = progress.layers_done();
  }
  EXPECT_EQ(last_layers_done, 4);
  for (; i < messages.size() && messages[i].has_tokens(); ++i) {
    tokens.insert(tokens.end(), messages[i].tokens().token_ids().begin(), messages[i].tokens().token_ids().end());
  }
  EXPECT_THAT(tokens, ElementsAre(11, 12, 13, 14, 15));
  ASSERT_EQ(i + 1, messages.size()) << "`finished` comes last, once";
  const v1::GenerateResponse& finished = messages.back().finished();
  EXPECT_TRUE(finished.token_ids().empty());
  EXPECT_EQ(finished.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(finished.usage().completion_tokens(), 5);
  EXPECT_EQ(finished.usage().total_tokens(), 21);
  EXPECT_EQ(finished.shards(), 2);
  for (const auto& m : messages) EXPECT_EQ(m.request_id(), "stream-1");

  // Without an id, every message carries the generated one.
  request.clear_request_id();
  grpc::ClientContext unnamed_context;
  reader = stub_->GenerateStream(&unnamed_context, request);
  messages.clear();
  while (reader->Read(&message)) messages.push_back(message);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_FALSE(messages.empty());
  EXPECT_FALSE(messages.front().request_id().empty());
  for (const auto& m : messages) EXPECT_EQ(m.request_id(), messages.front().request_id());
}

TEST_F(CoordinatorServiceTest, ShardCountFollowsPromptLengthAndMinShardTokens) {
  StartCoordinator();  // min_shard_tokens 8
  for (int w = 0; w < 3; ++w) AddWorker();
  struct Case {
    int prompt;
    int shards;
  };
  for (const Case& c : {Case{5, 1}, Case{15, 1}, Case{16, 2}, Case{24, 3}, Case{200, 3}}) {
    v1::GenerateResponse response;
    ASSERT_TRUE(Generate(Prompt(c.prompt, 2), &response).ok());
    EXPECT_EQ(response.shards(), c.shards) << "prompt of " << c.prompt;
  }
}

TEST_F(CoordinatorServiceTest, ShardRequestsCarryTheirSliceAndReservation) {
  StartCoordinator();
  for (int w = 0; w < 3; ++w) AddWorker();
  const v1::GenerateRequest request = Prompt(100, 5);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(request, &response).ok());
  ASSERT_EQ(response.shards(), 3);
  std::string request_id;
  for (int rank = 0; rank < 3; ++rank) {
    ASSERT_EQ(workers_[rank]->Requests().size(), 1u);
    const v1::RunShardRequest shard = workers_[rank]->Requests()[0];
    EXPECT_EQ(shard.rank(), rank);
    ASSERT_EQ(shard.shards_size(), 3);
    EXPECT_EQ(shard.shards(rank).address(), workers_[rank]->address());
    const int64_t begin = shard.shards(rank).token_begin(), end = shard.shards(rank).token_end();
    EXPECT_EQ(shard.shards(0).token_begin(), 0);
    EXPECT_EQ(shard.shards(2).token_end(), 100);
    ASSERT_EQ(shard.token_ids_size(), end - begin);
    for (int64_t t = begin; t < end; ++t) EXPECT_EQ(shard.token_ids(t - begin), request.prompt_token_ids(t));
    const int64_t held_tokens = (end - begin) + (rank == 2 ? 5 : 0);
    EXPECT_EQ(shard.reserved_bytes(), held_tokens * kFakeKvBytesPerToken + kFakeStateBytes);
    EXPECT_EQ(shard.peer_timeout_ms(), kPeerTimeoutMs);
    EXPECT_EQ(shard.eos_token_id(), 2);
    EXPECT_EQ(shard.stopping().max_new_tokens(), 5);
    if (rank == 0) request_id = shard.request_id();
    EXPECT_EQ(shard.request_id(), request_id);
  }
  // A second request gets another id; ignore_eos sends eos -1.
  v1::GenerateRequest again = Prompt(100, 5);
  again.mutable_stopping()->set_ignore_eos(true);
  ASSERT_TRUE(Generate(again, &response).ok());
  EXPECT_NE(workers_[0]->Requests().back().request_id(), request_id);
  EXPECT_EQ(workers_[2]->Requests().back().eos_token_id(), -1);
}

// --shard-layout auto: prompts of at least zigzag_min_tokens (which keep no
// prefix: the fake workers run without a cache) are dealt zigzag, each shard
// sent both its pieces' tokens, reserved for both; shorter ones stay contiguous.
TEST_F(CoordinatorServiceTest, LongPromptsAreDealtZigzagWithBothPiecesTokens) {
  CoordinatorOptions options = FastOptions();
  options.zigzag_min_tokens = 64;
  StartCoordinator(options);
  for (int w = 0; w < 3; ++w) AddWorker();
  v1::GenerateRequest request = Prompt(100, 5);
  request.mutable_sampling()->set_repetition_penalty(1.2f);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(request, &response).ok());
  ASSERT_EQ(response.shards(), 3);
  std::vector<bool> covered(100, false);
  for (int rank = 0; rank < 3; ++rank) {
    ASSERT_EQ(workers_[rank]->Requests().size(), 1u);
    const v1::RunShardRequest shard = workers_[rank]->Requests()[0];
    const v1::ShardPeer& mine = shard.shards(rank);
    ASSERT_LT(mine.late_begin(), mine.late_end()) << "rank " << rank;
    std::vector<int32_t> want;
    for (int64_t t = mine.token_begin(); t < mine.token_end(); ++t) want.push_back(request.prompt_token_ids(t));
    for (int64_t t = mine.late_begin(); t < mine.late_end(); ++t) want.push_back(request.prompt_token_ids(t));
    EXPECT_EQ(std::vector<int32_t>(shard.token_ids().begin(), shard.token_ids().end()), want) << "rank " << rank;
    for (int64_t t = mine.token_begin(); t < mine.token_end(); ++t) covered[t] = true;
    for (int64_t t = mine.late_begin(); t < mine.late_end(); ++t) covered[t] = true;
    const int64_t held_tokens = static_cast<int64_t>(want.size()) + (rank == 2 ? 5 : 0);
    EXPECT_EQ(shard.reserved_bytes(), held_tokens * kFakeKvBytesPerToken + kFakeStateBytes);
    EXPECT_TRUE(shard.prefix_token_ids().empty());
  }
  EXPECT_TRUE(std::all_of(covered.begin(), covered.end(), [](bool c) { return c; }));
  // The last shard holds the prompt's start and end, and decodes; its
  // penalty covers the middle it does not hold.
  const v1::RunShardRequest last = workers_[2]->Requests()[0];
  EXPECT_EQ(last.shards(2).token_begin(), 0);
  EXPECT_EQ(last.shards(2).late_end(), 100);
  EXPECT_GT(last.penalty_token_ids_size(), 0);

  ASSERT_TRUE(Generate(Prompt(50, 5), &response).ok());  // below zigzag_min_tokens
  ASSERT_EQ(response.shards(), 3);
  for (int rank = 0; rank < 3; ++rank) {
    const v1::RunShardRequest shard = workers_[rank]->Requests().back();
    EXPECT_EQ(shard.shards(rank).late_end(), 0) << "rank " << rank;
  }
}

// A model of Mamba layers alone has no attention to balance: contiguous.
TEST_F(CoordinatorServiceTest, MambaOnlyModelsStayContiguous) {
  CoordinatorOptions options = FastOptions();
  options.zigzag_min_tokens = 64;
  ServedModel model = FakeModel();
  model.has_attention = false;
  StartCoordinator(options, model);
  for (int w = 0; w < 2; ++w) AddWorker();
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(Prompt(100, 5), &response).ok());
  ASSERT_EQ(response.shards(), 2);
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(workers_[rank]->Requests().back().shards(rank).late_end(), 0) << "rank " << rank;
  }
}

// Workers that run a shard of several in rounds: a prompt whose even split
// passes their one-pass limit is split anyway, in the rounds that fit, each
// shard sent its striped pieces' tokens (common/striped_rounds.h) and the
// rounds; the plan keeps no prefix, and the last shard's penalty covers the
// pieces it does not hold.
TEST_F(CoordinatorServiceTest, ShardsLongerThanAPassArePlannedInRounds) {
  CoordinatorOptions options = FastOptions();
  options.zigzag_min_tokens = 64;  // zigzag asked for; its shards do not fit a pass
  StartCoordinator(options);
  FakeWorkerScript script;
  script.capacity_tokens = 1000;
  script.max_shard_tokens = 120;
  script.prefill_chunk_tokens = 64;
  script.max_prefill_rounds = 16;
  for (int w = 0; w < 3; ++w) AddWorker(script);
  EXPECT_EQ(ModelInfo().context_capacity_tokens(), 3000) << "the pass no longer caps a shard";
  v1::GenerateRequest request = Prompt(900, 5);
  request.mutable_sampling()->set_repetition_penalty(1.2f);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(request, &response).ok());
  ASSERT_EQ(response.shards(), 3);
  std::vector<int64_t> shares;
  for (int rank = 0; rank < 3; ++rank) {
    const v1::ShardPeer& peer = workers_[0]->Requests()[0].shards(rank);
    EXPECT_EQ(peer.late_end(), 0) << "contiguous shares";
    shares.push_back(peer.token_end() - peer.token_begin());
  }
  const int rounds = workers_[0]->Requests()[0].prefill_rounds();
  EXPECT_EQ(rounds, 3) << "shares of 300 in passes of 120";
  const std::vector<StripedPiece> pieces = StripedPieces(shares, rounds);
  for (int rank = 0; rank < 3; ++rank) {
    ASSERT_EQ(workers_[rank]->Requests().size(), 1u);
    const v1::RunShardRequest shard = workers_[rank]->Requests()[0];
    EXPECT_EQ(shard.prefill_rounds(), rounds) << "rank " << rank;
    std::vector<int32_t> want;
    for (const StripedPiece& p : pieces) {
      if (p.rank != rank) continue;
      EXPECT_LE(p.end - p.begin, 120);
      for (int64_t t = p.begin; t < p.end; ++t) want.push_back(request.prompt_token_ids(t));
    }
    EXPECT_EQ(std::vector<int32_t>(shard.token_ids().begin(), shard.token_ids().end()), want) << "rank " << rank;
    EXPECT_TRUE(shard.prefix_token_ids().empty());
  }
  EXPECT_EQ(pieces.back().rank, 2) << "the last shard holds the prompt's end";
  EXPECT_GT(workers_[2]->Requests()[0].penalty_token_ids_size(), 0);
}

TEST_F(CoordinatorServiceTest, OtherShardsAreCancelledAfterTheLastFinishesAndMemoryReturns) {
  StartCoordinator();
  for (int w = 0; w < 3; ++w) AddWorker();
  const v1::ModelInfo before = ModelInfo();
  EXPECT_EQ(before.context_capacity_tokens(), 3000);
  EXPECT_EQ(before.context_available_tokens(), 3000);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(Prompt(100, 5), &response).ok());
  ASSERT_EQ(response.shards(), 3);
  // Reservations are returned before the response is sent.
  EXPECT_EQ(ModelInfo().context_available_tokens(), 3000);
  EXPECT_TRUE(WaitUntil([&] { return workers_[0]->CancelledShards() == 1 && workers_[1]->CancelledShards() == 1; }));
  EXPECT_EQ(workers_[2]->CancelledShards(), 0) << "the last shard finished on its own";
  EXPECT_TRUE(WaitUntil([&] {
    for (const auto& worker : workers_) {
      if (worker->RunningShards() != 0) return false;
    }
    return true;
  }));
  EXPECT_EQ(ServerInfo().running_requests(), 0);
}

TEST_F(CoordinatorServiceTest, APrefillLimitCapsCapacityAndLongPromptsSpreadWider) {
  StartCoordinator();
  FakeWorkerScript script;
  script.capacity_tokens = 1000;  // K/V room for 1000 tokens, but a prefill of at most 120
  script.max_shard_tokens = 120;
  for (int w = 0; w < 3; ++w) AddWorker(script);
  EXPECT_EQ(ModelInfo().context_capacity_tokens(), 360);

  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(Prompt(200, 5), &response).ok());
  EXPECT_GE(response.shards(), 2);
  for (const auto& worker : workers_) {
    for (const v1::RunShardRequest& shard : worker->Requests()) {
      const bool last = shard.rank() == shard.shards_size() - 1;
      EXPECT_LE(shard.token_ids_size() + (last ? 5 : 0), 120) << "shard " << shard.rank();
    }
  }
  // Past every worker's limit together: refused up front, quoting the capacity.
  const grpc::Status too_long = Generate(Prompt(400, 5), &response);
  EXPECT_EQ(too_long.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << too_long.error_message();
  EXPECT_NE(too_long.error_message().find("360"), std::string::npos) << too_long.error_message();
}

// Workers that prefill a one-shard request in pieces: their one-pass limit
// bounds only the shards of multi-shard plans, not their capacity.
TEST_F(CoordinatorServiceTest, APrefillLimitCapsOnlyShardsOfSeveralWhenWorkersRunPieces) {
  StartCoordinator();
  FakeWorkerScript script;
  script.capacity_tokens = 1000;
  script.max_shard_tokens = 120;
  script.prefill_chunk_tokens = 64;
  for (int w = 0; w < 3; ++w) AddWorker(script);
  EXPECT_EQ(ModelInfo().context_capacity_tokens(), 3000);

  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(Prompt(200, 5), &response).ok());
  EXPECT_GE(response.shards(), 2) << "a prompt that splits within the passes still spreads";
  for (const auto& worker : workers_) {
    for (const v1::RunShardRequest& shard : worker->Requests()) EXPECT_LE(shard.token_ids_size(), 120);
  }
  // No split over 3 workers fits 120-token passes: one worker takes it all, in pieces.
  ASSERT_TRUE(Generate(Prompt(900, 5), &response).ok());
  EXPECT_EQ(response.shards(), 1);
  int holding = 0;
  for (const auto& worker : workers_) {
    for (const v1::RunShardRequest& shard : worker->Requests()) holding += shard.token_ids_size() == 900 ? 1 : 0;
  }
  EXPECT_EQ(holding, 1);
  // Longer than any worker holds, and too long for passes when split: refused, saying why.
  const grpc::Status too_long = Generate(Prompt(1200, 5), &response);
  EXPECT_EQ(too_long.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << too_long.error_message();
  EXPECT_THAT(too_long.error_message(), HasSubstr("one prefill pass (as few as 120 tokens"));
}

TEST_F(CoordinatorServiceTest, MomentarilyFullIsResourceExhausted) {
  StartCoordinator();
  FakeWorkerScript script;
  script.capacity_tokens = 100;
  script.hold_last_shard = true;
  FakeWorker* worker = AddWorker(script);

  grpc::Status first_status;
  v1::GenerateResponse first;
  std::thread holder([&] { first_status = Generate(Prompt(50, 10), &first); });
  ASSERT_TRUE(WaitUntil([&] { return worker->RunningShards() == 1; }));
  // 60 tokens + one request's state are held; a new request pays its own state too.
  EXPECT_EQ(ModelInfo().context_available_tokens(), 100 - 60 - kFakeStateBytes / kFakeKvBytesPerToken);
  EXPECT_EQ(ServerInfo().running_requests(), 1);

  v1::GenerateResponse second;
  const grpc::Status busy = Generate(Prompt(50, 10), &second);
  EXPECT_EQ(busy.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << busy.error_message();
  EXPECT_THAT(busy.error_message(), HasSubstr("momentarily full: 30 tokens free, 60 needed"));

  worker->Release();
  holder.join();
  EXPECT_TRUE(first_status.ok()) << first_status.error_message();
  EXPECT_EQ(ModelInfo().context_available_tokens(), 100);
  EXPECT_TRUE(Generate(Prompt(50, 10), &second).ok());
}

TEST_F(CoordinatorServiceTest, FailingShardFailsTheRequestQuicklyAndCancelsTheOthers) {
  StartCoordinator();
  FakeWorkerScript failing;
  failing.fail_after_prefill = true;
  failing.fail_after_prefill_code = grpc::StatusCode::INTERNAL;  // not retried (UNAVAILABLE is: below)
  FakeWorkerScript holding;
  holding.hold_last_shard = true;
  FakeWorker* first = AddWorker(failing);
  FakeWorker* last = AddWorker(holding);

  const absl::Time start = absl::Now();
  v1::GenerateResponse response;
  const grpc::Status status = Generate(Prompt(16, 4), &response);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(first->address()));
  // The other call may be cancelled before it reaches the worker at all.
  EXPECT_TRUE(
      WaitUntil([&] { return last->RunningShards() == 0 && last->CancelledShards() == last->StartedShards(); }));
  EXPECT_TRUE(WaitUntil([&] { return ModelInfo().workers_ready() == 2 && AllMemoryFree(); }));
}

// A worker lost before the first token: the other shard's call is cancelled
// and the request runs again, once, on the workers left.
TEST_F(CoordinatorServiceTest, WorkerLostBeforeTheFirstTokenIsRetriedOnTheOthers) {
  StartCoordinator();
  FakeWorkerScript failing;
  failing.fail_after_prefill = true;  // UNAVAILABLE: the worker is gone
  FakeWorkerScript holding;
  holding.hold_last_shard = true;
  FakeWorker* first = AddWorker(failing);
  FakeWorker* last = AddWorker(holding);

  grpc::Status status;
  v1::GenerateResponse response;
  std::thread request([&] { status = Generate(Prompt(16, 4), &response); });
  // The first attempt's held last shard is cancelled; the retry holds on `last` alone.
  ASSERT_TRUE(WaitUntil([&] { return last->StartedShards() == 2 && last->RunningShards() == 1; }));
  EXPECT_EQ(last->CancelledShards(), 1);
  last->Release();
  request.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.shards(), 1);
  EXPECT_EQ(first->StartedShards(), 1);
  // The failed worker answers its health checks, so it is ready again soon.
  EXPECT_TRUE(WaitUntil([&] { return ModelInfo().workers_ready() == 2 && AllMemoryFree(); }));
}

TEST_F(CoordinatorServiceTest, KilledWorkerFailsTheRequestWithUnavailable) {
  StartCoordinator();
  FakeWorkerScript holding;
  holding.hold_last_shard = true;
  FakeWorker* first = AddWorker();
  FakeWorker* last = AddWorker(holding);

  grpc::Status status;
  v1::GenerateResponse response;
  std::thread request([&] { status = Generate(Prompt(16, 4), &response); });
  ASSERT_TRUE(WaitUntil([&] { return first->RunningShards() == 1 && last->RunningShards() == 1; }));
  const absl::Time killed = absl::Now();
  first->Stop();
  // No token has gone out yet: the request is retried once on `last` alone,
  // whose worker is then lost too.
  ASSERT_TRUE(WaitUntil([&] { return last->StartedShards() == 2; }));
  last->Stop();
  request.join();
  EXPECT_LT(absl::Now() - killed, absl::Seconds(3));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(WaitUntil([&] { return last->CancelledShards() == 2; }));
  EXPECT_TRUE(WaitUntil([&] { return ModelInfo().workers_ready() == 0; }));
}

TEST_F(CoordinatorServiceTest, SilentWorkerIsDroppedAndAReregisteredOneComesBack) {
  CoordinatorOptions options = FastOptions();
  options.forget_after = absl::Milliseconds(300);
  StartCoordinator(options);
  AddWorker();
  FakeWorker* flaky = AddWorker();
  ASSERT_EQ(ModelInfo().workers_ready(), 2);

  flaky->SetAnswersStatus(false);
  ASSERT_TRUE(WaitUntil([&] { return ModelInfo().workers_ready() == 1; }));
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(Prompt(16, 2), &response).ok());
  EXPECT_EQ(response.shards(), 1) << "planned over the ready worker only";
  EXPECT_EQ(flaky->StartedShards(), 0);

  // Back: its next registration (workers repeat it every second) makes it
  // ready at once, whether or not it was forgotten meanwhile.
  flaky->SetAnswersStatus(true);
  ASSERT_TRUE(flaky->RegisterWith(server_->internal_address()));
  EXPECT_EQ(ModelInfo().workers_ready(), 2);

  // Killed: dropped, then forgotten; a restarted worker (new port) registers.
  const std::string old_address = flaky->address();
  flaky->Stop();
  ASSERT_TRUE(WaitUntil([&] { return ModelInfo().workers_ready() == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return ServerInfo().workers_size() == 1; }));
  FakeWorker* restarted = AddWorker();
  EXPECT_NE(restarted->address(), old_address);
  EXPECT_EQ(ModelInfo().workers_ready(), 2) << "registration checks the worker at once";
  ASSERT_TRUE(Generate(Prompt(16, 2), &response).ok());
  EXPECT_EQ(response.shards(), 2);
  EXPECT_EQ(restarted->StartedShards(), 1);
}

TEST_F(CoordinatorServiceTest, ClientCancellationCancelsWorkerCalls) {
  StartCoordinator();
  FakeWorkerScript holding;
  holding.hold_last_shard = true;
  FakeWorker* first = AddWorker();
  FakeWorker* last = AddWorker(holding);

  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::GenerateStreamResponse>> reader =
      stub_->GenerateStream(&context, Prompt(16, 4));
  v1::GenerateStreamResponse message;
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_TRUE(message.has_progress());
  ASSERT_TRUE(WaitUntil([&] { return first->RunningShards() == 1 && last->RunningShards() == 1; }));
  context.TryCancel();
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(
      WaitUntil([&] { return first->CancelledShards() == 1 && last->CancelledShards() == 1; }, absl::Seconds(2)));
  EXPECT_TRUE(WaitUntil([&] { return AllMemoryFree() && ServerInfo().running_requests() == 0; }));
}

TEST_F(CoordinatorServiceTest, ClientDeadlineReachesTheWorkers) {
  StartCoordinator();
  FakeWorkerScript holding;
  holding.hold_last_shard = true;
  FakeWorker* first = AddWorker();
  FakeWorker* last = AddWorker(holding);
  v1::GenerateResponse response;
  const grpc::Status status = Generate(Prompt(16, 4), &response, absl::Milliseconds(300));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_TRUE(
      WaitUntil([&] { return first->CancelledShards() == 1 && last->CancelledShards() == 1; }, absl::Seconds(2)));
  EXPECT_TRUE(WaitUntil([&] { return AllMemoryFree(); }));
}

TEST_F(CoordinatorServiceTest, ReturnLogitsJoinsShardRowsInOrder) {
  StartCoordinator();
  AddWorker();
  AddWorker();
  v1::GenerateRequest request = Prompt(16, 3);
  request.set_return_logits(true);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(request, &response).ok());
  ASSERT_EQ(response.shards(), 2);
  const v1::Logits& prompt = response.prompt_logits();
  ASSERT_EQ(prompt.rows(), 16);
  ASSERT_EQ(prompt.vocab_size(), 64);
  ASSERT_EQ(prompt.values_size(), 16 * 64);
  for (int row = 0; row < 16; ++row) EXPECT_EQ(prompt.values(row * 64), row) << "row " << row;
  const v1::Logits& tokens = response.token_logits();
  ASSERT_EQ(tokens.rows(), 3);
  ASSERT_EQ(tokens.values_size(), 3 * 64);
  EXPECT_EQ(tokens.values(2 * 64), -3);
}

TEST_F(CoordinatorServiceTest, LateMessagesOfOtherShardsAreWaitedFor) {
  StartCoordinator();
  FakeWorkerScript slow;
  slow.delay_before_logits = absl::Milliseconds(300);
  FakeWorker* first = AddWorker(slow);
  AddWorker();  // the last shard decodes at once
  v1::GenerateRequest request = Prompt(16, 3);
  request.set_return_logits(true);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::GenerateStreamResponse>> reader = stub_->GenerateStream(&context, request);
  std::vector<v1::GenerateStreamResponse> messages;
  v1::GenerateStreamResponse message;
  while (reader->Read(&message)) messages.push_back(message);
  ASSERT_TRUE(reader->Finish().ok());
  bool tokens_seen = false;
  for (const auto& m : messages) {
    if (m.has_tokens()) tokens_seen = true;
    if (m.has_progress()) EXPECT_FALSE(tokens_seen) << "progress after tokens";
    if (m.has_progress() && !tokens_seen) EXPECT_LE(m.progress().layers_done(), 4);
  }
  ASSERT_TRUE(messages.back().has_finished());
  EXPECT_EQ(messages.back().finished().prompt_logits().rows(), 16) << "the slow shard's rows are included";
  int last_progress = 0;
  for (const auto& m : messages) {
    if (m.has_progress()) last_progress = m.progress().layers_done();
  }
  EXPECT_EQ(last_progress, 4) << "prefill reported complete before the first token";
  EXPECT_TRUE(WaitUntil([&] { return first->CancelledShards() == 1; }));
}

TEST_F(CoordinatorServiceTest, ShutdownEndsRunningRequestsAndCancelsWorkerCalls) {
  StartCoordinator();
  FakeWorkerScript holding;
  holding.hold_last_shard = true;
  FakeWorker* first = AddWorker();
  FakeWorker* last = AddWorker(holding);
  grpc::Status status;
  v1::GenerateResponse response;
  std::thread request([&] { status = Generate(Prompt(16, 4), &response); });
  ASSERT_TRUE(WaitUntil([&] { return first->RunningShards() == 1 && last->RunningShards() == 1; }));
  const absl::Time start = absl::Now();
  server_->Shutdown();
  request.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(WaitUntil([&] { return first->CancelledShards() == 1 && last->CancelledShards() == 1; }));
}

TEST_F(CoordinatorServiceTest, ConcurrentRequestsAllComplete) {
  StartCoordinator();
  AddWorker();
  AddWorker();
  constexpr int kRequests = 6;
  std::vector<grpc::Status> statuses(kRequests);
  std::vector<v1::GenerateResponse> responses(kRequests);
  std::vector<std::thread> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([&, i] { statuses[i] = Generate(Prompt(16 + i, 4), &responses[i]); });
  }
  for (std::thread& client : clients) client.join();
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_THAT(responses[i].token_ids(), ElementsAre(11, 12, 13, 14));
  }
  EXPECT_TRUE(AllMemoryFree());
}

TEST_F(CoordinatorServiceTest, InfoDescribesModelAndWorkers) {
  StartCoordinator();
  FakeWorkerScript script;
  script.capacity_tokens = 500;
  FakeWorker* worker = AddWorker(script);
  const v1::ModelInfo model = ModelInfo();
  EXPECT_EQ(model.model_type(), "fake");
  EXPECT_EQ(model.model_path(), "/nowhere/fake");
  EXPECT_EQ(model.vocab_size(), 64);
  EXPECT_EQ(model.num_layers(), 4);
  EXPECT_EQ(model.context_capacity_tokens(), 500);
  EXPECT_EQ(model.context_available_tokens(), 500);
  EXPECT_EQ(model.workers_ready(), 1);
  EXPECT_EQ(model.max_new_tokens_limit(), 64);
  EXPECT_EQ(model.eos_token_id(), 2);
  const v1::ServerInfo server = ServerInfo();
  EXPECT_EQ(server.version(), "0.1.0");
  EXPECT_EQ(server.backend(), "cpu");
  ASSERT_EQ(server.workers_size(), 1);
  EXPECT_EQ(server.workers(0).address(), worker->address());
  EXPECT_TRUE(server.workers(0).ready());
  EXPECT_EQ(server.workers(0).capacity_tokens(), 500);
  EXPECT_EQ(server.workers(0).memory_budget_bytes(), kFakeStateBytes + 500 * kFakeKvBytesPerToken);
  EXPECT_EQ(server.workers(0).memory_used_bytes(), 0);
  EXPECT_EQ(server.workers(0).metrics_address(), worker->Status().metrics_address());
  EXPECT_EQ(server.running_requests(), 0);
}

TEST_F(CoordinatorServiceTest, MemoryAWorkerHoldsForOthersIsNotOffered) {
  StartCoordinator();
  FakeWorkerScript script;
  script.capacity_tokens = 1000;
  script.reported_used_bytes = 300 * kFakeKvBytesPerToken;  // e.g. a request of a previous coordinator
  AddWorker(script);
  const v1::ModelInfo info = ModelInfo();
  EXPECT_EQ(info.context_capacity_tokens(), 1000);
  EXPECT_EQ(info.context_available_tokens(), 700);
  EXPECT_EQ(ServerInfo().workers(0).memory_used_bytes(), 300 * kFakeKvBytesPerToken);
  v1::GenerateResponse response;
  const grpc::Status status = Generate(Prompt(700, 8), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(Generate(Prompt(600, 8), &response).ok());
}

TEST_F(CoordinatorServiceTest, WorkerOfAnotherModelIsNeverReady) {
  StartCoordinator();
  FakeWorkerScript other;
  other.vocab_size = 1000;
  AddWorker(other);
  EXPECT_EQ(ModelInfo().workers_ready(), 0);
  ASSERT_EQ(ServerInfo().workers_size(), 1);
  EXPECT_FALSE(ServerInfo().workers(0).ready());
}

}  // namespace
}  // namespace tessera
