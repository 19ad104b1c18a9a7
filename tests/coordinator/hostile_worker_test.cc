// The coordinator (its plain C++ API) against fake workers on 127.0.0.1 that
// lie, die or fail, and against hostile prompts. One test per finding:
//   3. A worker reporting a budget of 2^63 - 1 (or any impossible number) is
//      not ready, named with its reason in GetServerInfo; the capacity sums
//      stay right and requests run on the other workers.
//   8. Placement takes the least loaded worker that fits, ties rotating: no
//      worker takes every request.
//   9. A request placed on a worker that died just before (not yet noticed)
//      is retried once elsewhere, as is one whose worker blamed a peer
//      (reconnecting channels); never once a token reached the client.
//  11. Invalid UTF-8 in prompt_text is INVALID_ARGUMENT naming the byte
//      offset; a 100 MB text is refused at once, before tokenizing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <thread>

#include "absl/time/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/worker_capacity.h"
#include "tests/coordinator/fake_worker.h"

namespace tessera {
namespace {

using ::tessera::testing::FakeWorker;
using ::tessera::testing::FakeWorkerScript;
using ::tessera::testing::WaitUntil;
using ::testing::HasSubstr;

CoordinatorOptions FastOptions() {
  CoordinatorOptions options;
  options.min_shard_tokens = 8;
  options.max_new_tokens_limit = 64;
  options.health_interval = absl::Milliseconds(50);
  options.status_deadline = absl::Milliseconds(300);
  options.cancel_poll_interval = absl::Milliseconds(10);
  return options;
}

ServedModel FakeModel(int64_t vocab = 64) {
  ServedModel model;
  model.model_type = "fake";
  model.model_path = "/nowhere/fake";
  model.vocab_size = vocab;
  model.num_layers = 4;
  model.eos_token_id = 2;
  return model;
}

GenerateRequest Prompt(int tokens, int max_new_tokens = 4) {
  GenerateRequest request;
  for (int i = 0; i < tokens; ++i) request.prompt_token_ids.push_back(3 + i % 60);
  request.stopping.max_new_tokens = max_new_tokens;
  return request;
}

// Counts what the client would see.
class RecordingEvents final : public GenerateEvents {
 public:
  void OnStart(const std::string&) override { ++starts; }
  bool OnProgress(const PrefillProgress& progress) override {
    if (progress.layers_done < last_done && progress.layers_total == last_total) ++regressions;
    last_done = progress.layers_done;
    last_total = progress.layers_total;
    return true;
  }
  bool OnTokens(const TokenDelta& delta) override {
    tokens += static_cast<int>(delta.token_ids.size());
    return true;
  }
  int starts = 0;
  int tokens = 0;
  int regressions = 0;
  int32_t last_done = -1;
  int32_t last_total = -1;
};

class HostileWorkerTest : public ::testing::Test {
 protected:
  void Start(const CoordinatorOptions& options = FastOptions(), ServedModel model = FakeModel()) {
    coordinator_ = std::make_unique<Coordinator>(std::move(model), options);
  }
  FakeWorker* AddWorker(const FakeWorkerScript& script = {}) {
    std::unique_ptr<FakeWorker> worker = FakeWorker::Start(script);
    EXPECT_NE(worker, nullptr);
    EXPECT_TRUE(coordinator_->RegisterWorker(worker->address()).ok());
    workers_.push_back(std::move(worker));
    return workers_.back().get();
  }
  absl::StatusOr<GenerateResult> Generate(const GenerateRequest& request, GenerateEvents* events = nullptr) {
    IgnoreGenerateEvents ignore;
    return coordinator_->Generate(request, CallerContext(), events != nullptr ? *events : ignore);
  }
  const WorkerInfo* InfoOf(const FakeWorker* worker) {
    info_ = coordinator_->GetServerInfo();
    for (const WorkerInfo& w : info_.workers) {
      if (w.address == worker->address()) return &w;
    }
    return nullptr;
  }
  void TearDown() override {
    coordinator_.reset();
    workers_.clear();
  }

  std::unique_ptr<Coordinator> coordinator_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
  ServerInfo info_;
};

// Finding 3: a fake worker reporting a budget of 2^63 - 1 overflowed the
// summed capacity to -9.2e18 and every Generate failed INVALID_ARGUMENT.
TEST_F(HostileWorkerTest, AbsurdNumbersMakeAWorkerNotReadyAndNeverBreakCapacity) {
  Start();
  AddWorker();
  FakeWorker* honest = AddWorker();
  FakeWorker* liar = FakeWorker::Start({}).release();
  workers_.emplace_back(liar);
  liar->SetStatusEditor([](v1::WorkerStatus& s) { s.set_memory_budget_bytes(std::numeric_limits<int64_t>::max()); });
  ASSERT_TRUE(coordinator_->RegisterWorker(liar->address()).ok());

  const ModelInfo model = coordinator_->GetModelInfo();
  EXPECT_EQ(model.workers_ready, 2);
  EXPECT_EQ(model.context_capacity_tokens, 2000);
  absl::StatusOr<GenerateResult> result = Generate(Prompt(10));
  ASSERT_TRUE(result.ok()) << result.status();
  const WorkerInfo* info = InfoOf(liar);
  ASSERT_NE(info, nullptr);
  EXPECT_FALSE(info->ready);
  EXPECT_THAT(info->not_ready_reason, HasSubstr("memory_budget_bytes = 9223372036854775807"));

  // Every impossible number, one at a time, on a worker that was ready.
  const std::vector<std::function<void(v1::WorkerStatus&)>> lies = {
      [](v1::WorkerStatus& s) { s.set_kv_bytes_per_token(-5); },
      [](v1::WorkerStatus& s) { s.set_kv_bytes_per_token(std::numeric_limits<int64_t>::max()); },
      [](v1::WorkerStatus& s) { s.set_state_bytes_per_request(-1); },
      [](v1::WorkerStatus& s) { s.set_memory_used_bytes(std::numeric_limits<int64_t>::min()); },
      [](v1::WorkerStatus& s) { s.set_max_shard_tokens(-1); },
      [](v1::WorkerStatus& s) { s.set_max_context_tokens(int64_t{1} << 62); },
      [](v1::WorkerStatus& s) { s.set_num_layers(-1); },
      [](v1::WorkerStatus& s) { s.set_chunk_size(std::numeric_limits<int32_t>::max()); },
      [](v1::WorkerStatus& s) { s.set_active_requests(-4); },
      [](v1::WorkerStatus& s) { s.set_eos_token_id(-7); },
  };
  for (size_t i = 0; i < lies.size(); ++i) {
    SCOPED_TRACE("lie " + std::to_string(i));
    honest->SetStatusEditor(lies[i]);
    coordinator_->registry().CheckAllWorkers();
    EXPECT_EQ(coordinator_->GetModelInfo().workers_ready, 1);
    EXPECT_EQ(coordinator_->GetModelInfo().context_capacity_tokens, 1000);
    EXPECT_THAT(InfoOf(honest)->not_ready_reason, HasSubstr("it reports"));
    EXPECT_TRUE(Generate(Prompt(10)).ok());
    honest->SetStatusEditor(nullptr);
    coordinator_->registry().CheckAllWorkers();
    EXPECT_EQ(coordinator_->GetModelInfo().workers_ready, 2);
    EXPECT_TRUE(InfoOf(honest)->not_ready_reason.empty());
  }
}

TEST(WorkerCapacityMathTest, LargestValidNumbersSaturateInsteadOfWrapping) {
  v1::WorkerStatus status;
  status.set_memory_budget_bytes(kMaxReportedBytes);
  status.set_kv_bytes_per_token(1);
  EXPECT_TRUE(CheckWorkerStatus(status).ok());
  EXPECT_EQ(WorkerCapacityTokens(status), kUnboundedTokens);
  EXPECT_EQ(WorkerFreeTokens(status, std::numeric_limits<int64_t>::max()), 0);
  EXPECT_EQ(ShardReservationBytes(status, std::numeric_limits<int64_t>::max()), std::numeric_limits<int64_t>::max());
  status.set_kv_bytes_per_token(kMaxReportedBytes);
  EXPECT_EQ(ShardReservationBytes(status, int64_t{1} << 40), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(SaturatingAdd(std::numeric_limits<int64_t>::max(), 1), std::numeric_limits<int64_t>::max());
}

// Finding 8: placement always picked the first worker that fit; under load
// worker 1 ran 5,983 requests and workers 2 and 3 none.
TEST_F(HostileWorkerTest, PlacementTakesTheLeastLoadedWorkerAndRotatesTies) {
  Start();
  for (int i = 0; i < 3; ++i) AddWorker();
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(Generate(Prompt(4)).ok());
  for (const auto& worker : workers_) EXPECT_EQ(worker->StartedShards(), 10) << worker->address();

  // Concurrent requests that stay running: one per worker, never two on one.
  TearDown();
  Start();
  FakeWorkerScript held;
  held.hold_last_shard = true;
  for (int i = 0; i < 3; ++i) AddWorker(held);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back([this] { EXPECT_TRUE(Generate(Prompt(4)).ok()); });
  EXPECT_TRUE(WaitUntil([&] {
    for (const auto& worker : workers_) {
      if (worker->RunningShards() != 1) return false;
    }
    return true;
  }));
  for (const auto& worker : workers_) worker->Release();
  for (std::thread& t : threads) t.join();
}

// Finding 9: requests placed in the moment before a dead worker was noticed
// all failed (4/4).
TEST_F(HostileWorkerTest, AWorkerDeadJustBeforePlacementIsRetriedElsewhere) {
  CoordinatorOptions options = FastOptions();
  options.health_interval = absl::Seconds(60);  // nobody notices the death but the requests
  Start(options);
  FakeWorkerScript script;
  script.delay_before_logits = absl::Milliseconds(200);  // as real shards, none decodes before all prefilled
  for (int i = 0; i < 3; ++i) AddWorker(script);
  workers_[0]->Stop();
  std::vector<absl::StatusOr<GenerateResult>> results(4, absl::UnknownError("not run"));
  std::vector<RecordingEvents> events(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = Generate(Prompt(i % 2 == 0 ? 4 : 24), &events[i]); });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    EXPECT_EQ(results[i]->token_ids.size(), 4u);
    EXPECT_EQ(events[i].starts, 1) << "a retried request starts once for its client";
    EXPECT_EQ(events[i].regressions, 0) << "its progress never goes back";
  }
  const WorkerInfo* dead = InfoOf(workers_[0].get());
  ASSERT_NE(dead, nullptr);
  EXPECT_FALSE(dead->ready);
}

// Finding 9's other half: a worker whose channel to a peer failed (a peer
// that restarted, channels in reconnect backoff) names the peer; the request
// is retried without that peer, not without the worker that reported it.
TEST_F(HostileWorkerTest, AFailureBlamingAPeerIsRetriedWithoutThatPeer) {
  Start();
  FakeWorkerScript script;
  script.delay_before_logits = absl::Milliseconds(200);  // as real shards, none decodes before all prefilled
  for (int i = 0; i < 3; ++i) AddWorker(script);
  workers_[1]->FailNextShardInPrefill(grpc::StatusCode::UNAVAILABLE, workers_[2]->address());
  absl::StatusOr<GenerateResult> result = Generate(Prompt(24));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->shards, 2);
  EXPECT_EQ(workers_[0]->StartedShards(), 2);
  EXPECT_EQ(workers_[1]->StartedShards(), 2);
  EXPECT_EQ(workers_[2]->StartedShards(), 1) << "the blamed peer is left out of the retry";
}

TEST_F(HostileWorkerTest, NoRetryOnceATokenReachedTheClient) {
  Start();
  FakeWorkerScript dies;
  dies.fail_after_tokens = 2;
  AddWorker(dies);
  AddWorker();
  RecordingEvents events;
  absl::StatusOr<GenerateResult> result = Generate(Prompt(4), &events);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  EXPECT_EQ(events.tokens, 2);
  EXPECT_EQ(workers_[0]->StartedShards() + workers_[1]->StartedShards(), 1);
}

constexpr char kTokenizerPath[] = TESSERA_TEST_DATA_DIR "/tokenizers/bpe512-gpt2split/tokenizer.json";

ServedModel TextModel(int64_t max_context_tokens) {
  ServedModel model = FakeModel(512);
  model.max_context_tokens = max_context_tokens;
  EXPECT_TRUE(AttachTokenizer(kTokenizerPath, model).ok());
  return model;
}

// Finding 11: invalid UTF-8 in prompt_text gave INTERNAL with an empty
// message; a 100 MB text was tokenized (19 s) before it was refused.
TEST_F(HostileWorkerTest, InvalidUtf8IsInvalidArgumentNamingTheOffset) {
  Start(FastOptions(), TextModel(4096));
  FakeWorkerScript script;
  script.vocab_size = 512;
  AddWorker(script);
  GenerateRequest request;
  request.prompt_text = std::string("Hello \xff world", 13);
  request.stopping.max_new_tokens = 4;
  absl::StatusOr<GenerateResult> result = Generate(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("prompt_text must be valid UTF-8"));
  EXPECT_THAT(result.status().message(), HasSubstr("0xff at byte offset 6"));
  request.prompt_text = "Caf\xc3";  // cut inside a character
  EXPECT_THAT(Generate(request).status().message(), HasSubstr("byte offset 3"));
  TokenizeRequest tokenize;
  tokenize.text = std::string("ok \xc0\xaf", 5);  // overlong
  EXPECT_EQ(coordinator_->Tokenize(tokenize).status().code(), absl::StatusCode::kInvalidArgument);
  request.prompt_text = "Hello, world!";
  EXPECT_TRUE(Generate(request).ok());
}

TEST_F(HostileWorkerTest, AHugeTextIsRefusedBeforeTokenizing) {
  Start(FastOptions(), TextModel(4096));
  FakeWorkerScript script;
  script.vocab_size = 512;
  AddWorker(script);
  GenerateRequest request;
  request.prompt_text.assign(100'000'000, 'a');
  request.stopping.max_new_tokens = 4;
  const absl::Time start = absl::Now();
  absl::StatusOr<GenerateResult> result = Generate(request);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("prompt_text must be <= 131072 bytes"));
  EXPECT_LT(took, absl::Seconds(1));
  TokenizeRequest tokenize;
  tokenize.text = request.prompt_text;
  EXPECT_EQ(coordinator_->Tokenize(tokenize).status().code(), absl::StatusCode::kInvalidArgument);

  // Without a served context limit, the bound follows what the workers hold
  // (1000 tokens here: 32000 bytes).
  TearDown();
  Start(FastOptions(), TextModel(0));
  AddWorker(script);
  request.prompt_text.assign(40000, 'a');
  EXPECT_THAT(Generate(request).status().message(), HasSubstr("must be <= 32000 bytes"));
}

}  // namespace
}  // namespace tessera
