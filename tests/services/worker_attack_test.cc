// Attacks on a worker's gRPC face, as someone on 127.0.0.1 would make them,
// against real workers (bamba-tiny, CPU) serving with the limits a `tessera
// worker` process sets (network_limits.h). Each test is one finding:
//   2. AttendKv with a guessed request id (or the id without its secret)
//      reads nothing: NOT_FOUND, the same answer as for an unknown id.
//   4. Admission cannot overflow: reserved_bytes = 2^63 - 1000 is refused,
//      memory_used stays right, and the budget holds.
//   5. A forged RunShard asking for the whole budget with a silent peer and
//      peer_timeout_ms = 2^31 - 1 frees the worker within the capped
//      timeout; max_new_tokens past the worker's limit and a NaN
//      temperature are refused.
//   6. A flood of Deliver blocks for unknown ids is bounded, counted in the
//      memory gauge and dropped after the unclaimed expiry; an oversized
//      message is refused by the server, a too-large block by the mailbox.
//   7. A re-used id (a restarted coordinator's) runs as if fresh, a forged
//      one cancels nothing of another request (the whole coordinator
//      restart: coordinator_restart_test.cc).
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "model/model_weights.h"
#include "rpc/grpc_util.h"
#include "services/worker_service.h"
#include "transport/worker_transports.h"
#include "worker/cpu/cpu_backend.h"
#include "worker/network_limits.h"
#include "worker/shard_runner.h"

namespace tessera {
namespace {

using std::chrono::milliseconds;
using v1::RunShardEvent;
using v1::RunShardRequest;

constexpr char kSecret[] = "the-real-secret-0123";

std::string FixtureDir() { return std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/bamba-tiny"; }

const ModelWeights& Weights() {
  static const std::unique_ptr<ModelWeights> weights = [] {
    absl::StatusOr<std::unique_ptr<ModelWeights>> loaded = LoadModelWeights(FixtureDir());
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded.ok() ? *std::move(loaded) : nullptr;
  }();
  return *weights;
}

struct TestWorker {
  std::unique_ptr<Engine> engine;
  std::unique_ptr<WorkerTransports> transports;
  std::unique_ptr<ShardRunner> runner;
  std::unique_ptr<WorkerService> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
  std::unique_ptr<v1::Worker::Stub> stub;
  WorkerMessageLimits message_limits;
  MailboxLimits mailbox_limits;

  ~TestWorker() {
    if (server != nullptr) server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
  int64_t MemoryUsed() const {
    grpc::ClientContext context;
    v1::WorkerStatus status;
    EXPECT_TRUE(stub->GetStatus(&context, v1::GetWorkerStatusRequest(), &status).ok());
    return status.memory_used_bytes();
  }
};

// A worker as `tessera worker` builds it: mailbox and message limits from the
// model and its options; `unclaimed_ttl` shortened so tests stay short.
std::unique_ptr<TestWorker> StartWorker(ShardRunnerOptions options = {},
                                        milliseconds unclaimed_ttl = milliseconds(1000)) {
  auto w = std::make_unique<TestWorker>();
  w->engine = *MakeCpuEngineView(Weights());
  if (options.max_context_tokens == 0) options.max_context_tokens = Weights().config.max_position_embeddings;
  const ShardLengthBounds bounds = ShardLengthBoundsOf(*w->engine, options);
  w->mailbox_limits = PeerMailboxLimitsFor(w->engine->config(), bounds);
  w->mailbox_limits.unclaimed_ttl = unclaimed_ttl;
  w->message_limits = WorkerMessageLimitsFor(w->engine->config(), bounds);
  w->transports = std::make_unique<WorkerTransports>(nullptr, nullptr, w->mailbox_limits);
  w->runner = std::make_unique<ShardRunner>(*w->engine, *w->transports, options);
  w->service = std::make_unique<WorkerService>(*w->runner, *w->transports, "");
  grpc::ServerBuilder builder;
  int port = 0;
  ConfigureServerBuilder(builder, "127.0.0.1:0", &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(w->message_limits.max_receive_bytes));
  builder.RegisterService(w->service.get());
  w->server = builder.BuildAndStart();
  w->address = WithPort("127.0.0.1:0", port);
  w->runner->set_address(w->address);
  w->stub = v1::Worker::NewStub(MakeChannel(w->address));
  return w;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::seconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

std::vector<int32_t> Prompt(int tokens) {
  std::vector<int32_t> ids(tokens);
  for (int i = 0; i < tokens; ++i) ids[i] = 3 + (i * 7) % 500;
  return ids;
}

// The RunShardRequest of `rank` for a prompt cut at `bounds` over `workers`.
RunShardRequest ShardRequestFor(const std::string& id, const std::string& secret, int rank,
                                const std::vector<std::string>& addresses, const std::vector<int64_t>& bounds,
                                const std::vector<int32_t>& prompt, int max_new_tokens) {
  RunShardRequest request;
  request.set_request_id(id);
  request.set_request_secret(secret);
  request.set_rank(rank);
  for (size_t s = 0; s < addresses.size(); ++s) {
    v1::ShardPeer* peer = request.add_shards();
    peer->set_address(addresses[s]);
    peer->set_token_begin(bounds[s]);
    peer->set_token_end(bounds[s + 1]);
  }
  request.mutable_token_ids()->Add(prompt.begin() + bounds[rank], prompt.begin() + bounds[rank + 1]);
  request.mutable_stopping()->set_max_new_tokens(max_new_tokens);
  request.set_peer_timeout_ms(10000);
  request.set_eos_token_id(-1);
  return request;
}

// Runs one call to its end; the stream's status.
grpc::Status RunToEnd(v1::Worker::Stub& stub, const RunShardRequest& request,
                      milliseconds deadline = milliseconds(30000)) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline);
  auto reader = stub.RunShard(&context, request);
  RunShardEvent event;
  while (reader->Read(&event)) {
  }
  return reader->Finish();
}

// A two-shard request whose first shard keeps holding its K/V on `holder`
// (as the coordinator leaves it until the request ends) once the last shard
// on `decoder` finished. End() cancels the holder.
class HeldRequest {
 public:
  HeldRequest(TestWorker& holder, TestWorker& decoder, std::string id, std::string secret, int64_t reserved = 0)
      : prompt_(Prompt(64)), bounds_({0, 32, 64}) {
    const std::vector<std::string> addresses = {holder.address, decoder.address};
    RunShardRequest first = ShardRequestFor(id, secret, 0, addresses, bounds_, prompt_, 4);
    first.set_reserved_bytes(reserved);
    const RunShardRequest last = ShardRequestFor(id, secret, 1, addresses, bounds_, prompt_, 4);
    holder_thread_ = std::thread([this, &holder, first] {
      auto reader = holder.stub->RunShard(&holder_context_, first);
      RunShardEvent event;
      while (reader->Read(&event)) {
        if (event.has_prefilled()) {
          std::lock_guard<std::mutex> lock(mu_);
          prefilled_ = true;
        }
      }
      holder_status_ = reader->Finish();
    });
    decoder_status_ = RunToEnd(*decoder.stub, last);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!prefilled() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(5));
  }
  ~HeldRequest() { End(); }

  bool prefilled() {
    std::lock_guard<std::mutex> lock(mu_);
    return prefilled_;
  }
  const grpc::Status& decoder_status() const { return decoder_status_; }
  int64_t prompt_tokens() const { return bounds_.back(); }
  void End() {
    if (!holder_thread_.joinable()) return;
    holder_context_.TryCancel();
    holder_thread_.join();
  }

 private:
  std::vector<int32_t> prompt_;
  std::vector<int64_t> bounds_;
  grpc::ClientContext holder_context_;
  std::thread holder_thread_;
  grpc::Status holder_status_;
  grpc::Status decoder_status_;
  std::mutex mu_;
  bool prefilled_ = false;
};

grpc::Status AttendKv(TestWorker& worker, const std::string& id, const std::string& secret, int64_t position,
                      v1::AttendKvResponse* response) {
  const AttentionConfig& a = Weights().config.attention;
  v1::AttendKvRequest request;
  request.set_request_id(id);
  request.set_request_secret(secret);
  request.set_attention_slot(0);
  request.set_q_position0(position);
  request.set_q_len(1);
  for (int64_t i = 0; i < a.num_heads * a.head_dim; ++i) request.add_q(0.01f * static_cast<float>(i % 13));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return worker.stub->AttendKv(&context, request, response);
}

// Finding 2: `req-38` guessed while another client's request ran returned
// attention outputs over its K/V.
TEST(WorkerAttackTest, AGuessedRequestIdReadsNoKv) {
  auto holder = StartWorker();
  auto decoder = StartWorker();
  HeldRequest held(*holder, *decoder, "req-38", kSecret);
  ASSERT_TRUE(held.decoder_status().ok()) << held.decoder_status().error_message();
  ASSERT_TRUE(held.prefilled());

  v1::AttendKvResponse response;
  const grpc::Status guessed = AttendKv(*holder, "req-38", "", held.prompt_tokens(), &response);
  const grpc::Status wrong = AttendKv(*holder, "req-38", "a-guessed-secret-xxxx", held.prompt_tokens(), &response);
  const grpc::Status unknown = AttendKv(*holder, "req-39", "a-guessed-secret-xxxx", held.prompt_tokens(), &response);
  EXPECT_EQ(guessed.error_code(), grpc::StatusCode::NOT_FOUND) << guessed.error_message();
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::NOT_FOUND) << wrong.error_message();
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  // Indistinguishable from an id that does not exist (but for the id itself).
  EXPECT_EQ(wrong.error_message(), "request req-38 holds no K/V here");
  EXPECT_EQ(unknown.error_message(), "request req-39 holds no K/V here");
  EXPECT_EQ(response.out_size(), 0);

  // The holder is there: the request's own peers, with the secret, are answered.
  const grpc::Status real = AttendKv(*holder, "req-38", kSecret, held.prompt_tokens(), &response);
  ASSERT_TRUE(real.ok()) << real.error_message();
  const AttentionConfig& a = Weights().config.attention;
  EXPECT_EQ(response.out_size(), a.num_heads * a.head_dim);
}

// Finding 4: with memory held, reserved_bytes = 2^63 - 1000 was admitted,
// memory_used went negative, and more was admitted past the budget.
TEST(WorkerAttackTest, AdmissionCannotOverflowTheBudget) {
  ShardRunnerOptions options;
  options.memory_budget_bytes = int64_t{64} << 20;
  auto holder = StartWorker(options);
  auto decoder = StartWorker();
  const int64_t half = options.memory_budget_bytes / 2;
  HeldRequest held(*holder, *decoder, "held", kSecret, /*reserved=*/half);
  ASSERT_TRUE(held.prefilled());
  EXPECT_GE(holder->MemoryUsed(), half);

  const std::vector<int32_t> prompt = Prompt(8);
  RunShardRequest forged = ShardRequestFor("forged", kSecret, 0, {holder->address}, {0, 8}, prompt, 1);
  forged.set_reserved_bytes(std::numeric_limits<int64_t>::max() - 1000);
  const grpc::Status huge = RunToEnd(*holder->stub, forged);
  EXPECT_EQ(huge.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << huge.error_message();
  EXPECT_GE(holder->MemoryUsed(), half) << "memory_used must never wrap";
  EXPECT_LE(holder->MemoryUsed(), options.memory_budget_bytes);

  forged.set_reserved_bytes(half + 1);  // fits the budget alone, not beside what is held
  const grpc::Status over = RunToEnd(*holder->stub, forged);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << over.error_message();
  forged.set_reserved_bytes(half / 2);
  const grpc::Status fits = RunToEnd(*holder->stub, forged);
  EXPECT_TRUE(fits.ok()) << fits.error_message();
  held.End();
  EXPECT_TRUE(WaitFor([&] { return holder->MemoryUsed() == 0; }));
}

// Finding 5: a direct RunShard with the whole budget, a silent peer and
// peer_timeout_ms = 2^31 - 1 held the worker indefinitely.
TEST(WorkerAttackTest, ASilentPeerCannotHoldTheWorkerAndForgedLimitsAreRefused) {
  ShardRunnerOptions options;
  options.memory_budget_bytes = int64_t{64} << 20;
  options.max_peer_timeout = milliseconds(1000);
  options.max_new_tokens_limit = 4096;
  auto worker = StartWorker(options);
  auto silent = StartWorker();  // accepts the blocks, never runs its shard
  const std::vector<int32_t> prompt = Prompt(64);
  RunShardRequest forged = ShardRequestFor("hog", kSecret, 0, {worker->address, silent->address}, {0, 32, 64},
                                           prompt, 1);
  forged.set_reserved_bytes(options.memory_budget_bytes);
  forged.set_peer_timeout_ms(std::numeric_limits<int32_t>::max());
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = RunToEnd(*worker->stub, forged);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_LT(seconds, 5.0) << "the peer timeout is capped at 1 s here";
  EXPECT_EQ(worker->MemoryUsed(), 0);

  RunShardRequest long_run = ShardRequestFor("long", kSecret, 0, {worker->address}, {0, 8}, Prompt(8), 10800);
  const grpc::Status too_many = RunToEnd(*worker->stub, long_run);
  EXPECT_EQ(too_many.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(too_many.error_message().find("4096"), std::string::npos) << too_many.error_message();

  RunShardRequest nan = ShardRequestFor("nan", kSecret, 0, {worker->address}, {0, 8}, Prompt(8), 4);
  nan.mutable_sampling()->set_temperature(std::nanf(""));
  const grpc::Status nan_status = RunToEnd(*worker->stub, nan);
  EXPECT_EQ(nan_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << nan_status.error_message();
  nan.mutable_sampling()->set_temperature(1.0f);
  nan.mutable_sampling()->set_top_p(std::nanf(""));
  EXPECT_EQ(RunToEnd(*worker->stub, nan).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

grpc::Status Deliver(TestWorker& worker, const std::string& id, std::string data, uint64_t tag = 1) {
  v1::PeerBlock block;
  block.set_request_id(id);
  block.set_request_secret("attacker-secret-0123");
  block.set_tag(tag);
  block.set_from_rank(0);
  block.set_data(std::move(data));
  v1::DeliverAck ack;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return worker.stub->Deliver(&context, block, &ack);
}

// Finding 6: 16 Deliver blocks of 25 MB for unknown ids took a worker from
// 34 to 601 MiB, invisible to its memory gauge; 1 GiB messages were accepted.
TEST(WorkerAttackTest, AFloodOfBlocksForUnknownIdsIsBoundedCountedAndExpires) {
  // A served context of 16K tokens: the largest legitimate block (a ring
  // K/V block of a 16K-token shard) is 4 MiB, and so is the message limit.
  ShardRunnerOptions options;
  options.max_context_tokens = 16384;
  auto worker = StartWorker(options, /*unclaimed_ttl=*/milliseconds(3000));
  const int64_t max_block = worker->mailbox_limits.max_block_bytes;
  EXPECT_EQ(max_block, 2 * 16384 * Weights().config.attention.num_kv_heads * Weights().config.attention.head_dim * 4);
  ASSERT_LT(worker->message_limits.max_receive_bytes, int64_t{8} << 20);

  // The finding's 25 MB blocks, and anything past the largest Worker
  // message this model needs: the server refuses them unread.
  const grpc::Status finding = Deliver(*worker, "unknown", std::string(25'000'000, 'x'));
  EXPECT_EQ(finding.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << finding.error_message();
  // Within the message limit but larger than the model's largest exchange.
  const grpc::Status big_block = Deliver(*worker, "unknown", std::string(max_block + 1, 'x'));
  EXPECT_EQ(big_block.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << big_block.error_message();

  // 16 blocks of the largest size for 16 unknown ids: bounded.
  int accepted = 0, refused = 0;
  for (int i = 0; i < 16; ++i) {
    const grpc::Status status = Deliver(*worker, "unknown-" + std::to_string(i), std::string(max_block, 'x'));
    if (status.ok()) {
      ++accepted;
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  const int64_t held = worker->MemoryUsed();
  EXPECT_EQ(held, accepted * (max_block + kMailboxBlockOverheadBytes)) << "undelivered blocks count as memory used";
  EXPECT_LE(held, worker->mailbox_limits.max_unclaimed_bytes);

  // Nobody claims them: they are dropped after the expiry, and room returns.
  EXPECT_TRUE(WaitFor([&] { return worker->MemoryUsed() == 0; }, std::chrono::seconds(10)));
  EXPECT_TRUE(Deliver(*worker, "later", std::string(max_block, 'x')).ok());
}

// Finding 7, at the workers: ids remembered as ended must not fail a fresh
// request that reuses them (a restarted coordinator counting from req-1
// again), and a forged request under someone else's id cancels nothing.
TEST(WorkerAttackTest, ReusedOrForgedIdsCannotCancelAnotherRequest) {
  auto a = StartWorker();
  auto b = StartWorker();
  const std::vector<int32_t> prompt = Prompt(64);
  const std::vector<std::string> addresses = {a->address, b->address};
  const std::vector<int64_t> bounds = {0, 32, 64};
  auto run_request = [&](const std::string& id, const std::string& secret) {
    HeldRequest request(*a, *b, id, secret);  // ended as the coordinator ends a finished request
    return request.decoder_status();
  };
  ASSERT_TRUE(run_request("req-1", "first-coordinator-s1").ok());
  // An attacker ends requests under ids it guesses (a shard whose peer is gone).
  RunShardRequest forged = ShardRequestFor("req-2", "attacker-secret-0123", 0, {a->address, "127.0.0.1:1"}, bounds,
                                           prompt, 4);
  EXPECT_FALSE(RunToEnd(*a->stub, forged).ok());
  // A restarted coordinator reuses both ids with fresh secrets: they run.
  const grpc::Status again = run_request("req-1", "second-coordinator-1");
  EXPECT_TRUE(again.ok()) << again.error_message();
  const grpc::Status forged_id = run_request("req-2", "second-coordinator-2");
  EXPECT_TRUE(forged_id.ok()) << forged_id.error_message();

  // A running request's id, forged: refused, and the request still answers its peers.
  HeldRequest held(*a, *b, "req-3", kSecret);
  ASSERT_TRUE(held.prefilled());
  RunShardRequest same_id = ShardRequestFor("req-3", "attacker-secret-0123", 0, {a->address}, {0, 8}, Prompt(8), 1);
  EXPECT_EQ(RunToEnd(*a->stub, same_id).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(Deliver(*a, "req-3", "junk").ok()) << "filed apart under the wrong secret";
  v1::AttendKvResponse response;
  EXPECT_TRUE(AttendKv(*a, "req-3", kSecret, held.prompt_tokens(), &response).ok());
}

}  // namespace
}  // namespace tessera
