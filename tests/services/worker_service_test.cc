// Worker services over real gRPC on 127.0.0.1, driven the way the
// coordinator drives them: W shards prefill with their peers (Deliver), the
// last decodes with split-KV attention (AttendKv), and the result equals the
// Hugging Face reference (one worker alone prefills in pieces of 16 tokens).
// Afterwards every worker holds no memory.
#include <memory>
#include <mutex>
#include <thread>

#include "coordinator/shard_plan.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rpc/grpc_util.h"
#include "services/worker_service.h"
#include "tools/reference_eval.h"
#include "model/model_weights.h"
#include "model/safetensors.h"
#include "transport/worker_transports.h"
#include "worker/cpu/cpu_backend.h"
#include "worker/shard_runner.h"

namespace tessera {
namespace {

struct TestWorker {
  std::unique_ptr<Engine> engine;
  std::unique_ptr<WorkerTransports> transports;
  std::unique_ptr<ShardRunner> runner;
  std::unique_ptr<WorkerService> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
  std::unique_ptr<tessera::v1::Worker::Stub> stub;
};

// Workers whose one-shard prefills run in pieces of `prefill_chunk_tokens`.
std::vector<TestWorker> StartWorkers(const ModelWeights& weights, int n, int64_t budget = int64_t{1} << 30,
                                     int64_t max_shard_tokens = 0, int64_t prefill_chunk_tokens = 16) {
  std::vector<TestWorker> workers(n);
  for (TestWorker& w : workers) {
    grpc::ServerBuilder builder;
    int port = 0;
    ConfigureServerBuilder(builder, "127.0.0.1:0", &port);
    ShardRunnerOptions options;
    options.memory_budget_bytes = budget;
    options.max_shard_tokens = max_shard_tokens;
    w.engine = *MakeCpuEngineView(weights);
    w.engine->set_prefill_chunk_tokens(prefill_chunk_tokens);
    w.transports = std::make_unique<WorkerTransports>(nullptr, nullptr);
    w.runner = std::make_unique<ShardRunner>(*w.engine, *w.transports, options);
    w.service = std::make_unique<WorkerService>(*w.runner, *w.transports, "");
    builder.RegisterService(w.service.get());
    w.server = builder.BuildAndStart();
    w.address = WithPort("127.0.0.1:0", port);
    w.runner->set_address(w.address);
    w.stub = tessera::v1::Worker::NewStub(MakeChannel(w.address));
  }
  return workers;
}

struct ShardOutcome {
  grpc::Status status;
  std::vector<tessera::v1::RunShardEvent> events;
};

class WorkerServiceTest : public testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(WorkerServiceTest, ShardedRunMatchesReferenceAndFreesMemory) {
  const auto& [fixture, num_workers] = GetParam();
  const std::string dir = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/" + fixture;
  absl::StatusOr<std::unique_ptr<ModelWeights>> weights = LoadModelWeights(dir);
  ASSERT_TRUE(weights.ok()) << weights.status();
  auto ref = SafetensorsFile::Open(dir + "/reference.safetensors");
  ASSERT_TRUE(ref.ok());
  const std::vector<int64_t> ids = *ReadInt64(**ref, "input_ids.77");
  const std::vector<float> ref_logits = *ReadFloat32(**ref, "logits.77");
  const std::vector<int64_t> ref_greedy = *ReadInt64(**ref, "greedy.77");
  const std::vector<float> ref_steps = *ReadFloat32(**ref, "logits_greedy.77");

  std::vector<TestWorker> workers = StartWorkers(**weights, num_workers);
  const std::vector<int64_t> bounds = *PlanShardBounds(77, (*weights)->config.mamba.chunk_size, num_workers);
  std::vector<ShardOutcome> outcomes(num_workers);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  for (int r = 0; r < num_workers; ++r) contexts.push_back(std::make_unique<grpc::ClientContext>());
  std::mutex mu;
  int prefilled_count = 0;
  bool last_finished = false;
  std::vector<std::thread> threads;
  for (int r = 0; r < num_workers; ++r) {
    threads.emplace_back([&, r] {
      tessera::v1::RunShardRequest request;
      request.set_request_id("req-1");
      request.set_request_secret("secret-of-req-1!");
      request.set_rank(r);
      for (int s = 0; s < num_workers; ++s) {
        auto* shard = request.add_shards();
        shard->set_address(workers[s].address);
        shard->set_token_begin(bounds[s]);
        shard->set_token_end(bounds[s + 1]);
      }
      for (int64_t t = bounds[r]; t < bounds[r + 1]; ++t) request.add_token_ids(static_cast<int32_t>(ids[t]));
      request.mutable_stopping()->set_max_new_tokens(24);
      request.set_return_logits(true);
      request.set_peer_timeout_ms(10000);
      request.set_eos_token_id(-1);
      auto reader = workers[r].stub->RunShard(contexts[r].get(), request);
      tessera::v1::RunShardEvent event;
      while (reader->Read(&event)) {
        outcomes[r].events.push_back(event);
        // As the coordinator does: once the last shard has finished and every
        // shard has prefilled (its logits are in), end the others.
        if (event.has_prefilled() || event.has_finished()) {
          std::lock_guard<std::mutex> lock(mu);
          prefilled_count += event.has_prefilled() ? 1 : 0;
          last_finished = last_finished || event.has_finished();
          if (last_finished && prefilled_count == num_workers) {
            for (int s = 0; s + 1 < num_workers; ++s) contexts[s]->TryCancel();
          }
        }
      }
      outcomes[r].status = reader->Finish();
    });
  }
  for (std::thread& t : threads) t.join();

  ASSERT_TRUE(outcomes.back().status.ok()) << outcomes.back().status.error_message();
  std::vector<float> prompt_logits, step_logits;
  std::vector<int64_t> tokens;
  for (int r = 0; r < num_workers; ++r) {
    bool prefilled = false;
    for (const auto& e : outcomes[r].events) {
      if (e.has_prompt_logits()) prompt_logits.insert(prompt_logits.end(), e.prompt_logits().values().begin(), e.prompt_logits().values().end());
      if (e.has_prefilled()) prefilled = true;
      if (e.has_tokens()) {
        tokens.insert(tokens.end(), e.tokens().token_ids().begin(), e.tokens().token_ids().end());
        step_logits.insert(step_logits.end(), e.tokens().logits().values().begin(), e.tokens().logits().values().end());
      }
    }
    EXPECT_TRUE(prefilled) << "shard " << r;
    if (r + 1 < num_workers) {
      EXPECT_EQ(outcomes[r].status.error_code(), grpc::StatusCode::CANCELLED);
    }
  }
  EXPECT_LE(RelativeL2(prompt_logits, ref_logits), 1e-4);
  EXPECT_LE(RelativeL2(step_logits, ref_steps), 1e-4);
  EXPECT_EQ(tokens, ref_greedy);
  // A cancelled shard frees its memory as soon as its handler sees the cancellation.
  for (TestWorker& w : workers) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (w.runner->active_requests() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(w.runner->memory_used_bytes(), 0);
    EXPECT_EQ(w.runner->active_requests(), 0);
    w.server->Shutdown();
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, WorkerServiceTest,
                         testing::Combine(testing::Values("mamba2-tiny", "bamba-tiny", "nemotronh-tiny"),
                                          testing::Values(1, 2, 3)),
                         [](const auto& info) {
                           std::string name = std::get<0>(info.param) + "_W" + std::to_string(std::get<1>(info.param));
                           for (char& ch : name) ch = ch == '-' ? '_' : ch;
                           return name;
                         });

// Shard 0 of a request on `worker`, to the end of its stream: the whole
// `tokens`-token prompt, or, with `later_tokens` > 0, the first `tokens` of a
// request whose second shard (another worker's, never reached) holds more.
grpc::Status RunWholePrompt(TestWorker& worker, const std::string& request_id, int tokens, int later_tokens = 0,
                            int prefill_rounds = 0) {
  tessera::v1::RunShardRequest request;
  request.set_request_id(request_id);
  request.set_request_secret("secret-0123456789");
  auto* shard = request.add_shards();
  shard->set_address(worker.address);
  shard->set_token_begin(0);
  shard->set_token_end(tokens);
  if (later_tokens > 0) {
    auto* later = request.add_shards();
    later->set_address("127.0.0.1:1");
    later->set_token_begin(tokens);
    later->set_token_end(tokens + later_tokens);
  }
  for (int i = 0; i < tokens; ++i) request.add_token_ids(i);
  request.mutable_stopping()->set_max_new_tokens(1);
  request.set_prefill_rounds(prefill_rounds);
  grpc::ClientContext context;
  auto reader = worker.stub->RunShard(&context, request);
  tessera::v1::RunShardEvent event;
  while (reader->Read(&event)) {
  }
  return reader->Finish();
}

TEST(WorkerServiceAdmissionTest, OverBudgetIsResourceExhausted) {
  const std::string dir = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/bamba-tiny";
  auto weights = LoadModelWeights(dir);
  ASSERT_TRUE(weights.ok());
  std::vector<TestWorker> workers = StartWorkers(**weights, 1, /*budget=*/4096);
  const grpc::Status status = RunWholePrompt(workers[0], "big", 100);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  workers[0].server->Shutdown();
}

// A shard of several runs in one pass: past the pass limit it is refused. A
// shard alone runs in pieces: any length its budget holds, as long as a
// piece fits the pass.
TEST(WorkerServiceAdmissionTest, AShardOfSeveralPastThePrefillLimitIsRefusedAndOneAloneRunsInPieces) {
  const std::string dir = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/bamba-tiny";
  auto weights = LoadModelWeights(dir);
  ASSERT_TRUE(weights.ok());
  std::vector<TestWorker> workers =
      StartWorkers(**weights, 1, int64_t{1} << 30, /*max_shard_tokens=*/64, /*prefill_chunk_tokens=*/16);
  {
    grpc::ClientContext context;
    tessera::v1::WorkerStatus status;
    ASSERT_TRUE(workers[0].stub->GetStatus(&context, tessera::v1::GetWorkerStatusRequest(), &status).ok());
    EXPECT_EQ(status.max_shard_tokens(), 64);
    EXPECT_EQ(status.prefill_chunk_tokens(), 16);
  }
  const grpc::Status sharded = RunWholePrompt(workers[0], "sharded", 65, /*later_tokens=*/10);
  EXPECT_EQ(sharded.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << sharded.error_message();
  EXPECT_NE(sharded.error_message().find("at most 64 tokens in one pass"), std::string::npos)
      << sharded.error_message();
  // In rounds the pass is one round's piece: 2 rounds of 70 do not fit, and
  // a plan with more rounds than a shard has tokens is not a plan.
  const grpc::Status rounds = RunWholePrompt(workers[0], "rounds", 140, /*later_tokens=*/10, /*prefill_rounds=*/2);
  EXPECT_EQ(rounds.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << rounds.error_message();
  EXPECT_NE(rounds.error_message().find("in 2 rounds, one pass of up to 70 a round"), std::string::npos)
      << rounds.error_message();
  const grpc::Status bad_rounds = RunWholePrompt(workers[0], "bad-rounds", 140, /*later_tokens=*/10, 11);
  EXPECT_EQ(bad_rounds.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad_rounds.error_message();
  const grpc::Status alone = RunWholePrompt(workers[0], "alone", 200);
  EXPECT_TRUE(alone.ok()) << alone.error_message();
  workers[0].server->Shutdown();
  // Pieces longer than the pass are refused too.
  workers = StartWorkers(**weights, 1, int64_t{1} << 30, /*max_shard_tokens=*/64, /*prefill_chunk_tokens=*/128);
  const grpc::Status big_pieces = RunWholePrompt(workers[0], "big-pieces", 100);
  EXPECT_EQ(big_pieces.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << big_pieces.error_message();
  EXPECT_NE(big_pieces.error_message().find("in passes of 100"), std::string::npos) << big_pieces.error_message();
  workers[0].server->Shutdown();
}

TEST(WorkerServiceAdmissionTest, BadShardRequestsAreInvalidArgument) {
  const std::string dir = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/mamba2-tiny";
  auto weights = LoadModelWeights(dir);
  ASSERT_TRUE(weights.ok());
  std::vector<TestWorker> workers = StartWorkers(**weights, 1);
  for (int variant = 0; variant < 3; ++variant) {
    tessera::v1::RunShardRequest request;
    request.set_request_id("bad");
    request.set_request_secret("secret-0123456789");
    auto* shard = request.add_shards();
    shard->set_address(workers[0].address);
    shard->set_token_begin(0);
    shard->set_token_end(3);
    request.add_token_ids(1);
    request.add_token_ids(variant == 0 ? 512 : 2);  // 512 == vocab size
    if (variant != 1) request.add_token_ids(3);     // variant 1: count mismatch
    if (variant == 2) request.set_rank(5);
    request.mutable_stopping()->set_max_new_tokens(1);
    grpc::ClientContext context;
    auto reader = workers[0].stub->RunShard(&context, request);
    tessera::v1::RunShardEvent event;
    while (reader->Read(&event)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT) << variant;
  }
  workers[0].server->Shutdown();
}

}  // namespace
}  // namespace tessera
