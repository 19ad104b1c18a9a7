// Eight concurrent GenerateStream requests of different lengths on a
// coordinator + 3 worker processes: every token stream equals the
// single-process greedy reference, and afterwards every worker's K/V and
// state memory is back to zero.
#include <thread>

#include "tests/e2e/cluster_fixture.h"
#include "tools/engine_greedy_runner.h"
#include "model/model_weights.h"

namespace tessera {
namespace {

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> tokens;
  bool saw_progress = false;
  tessera::v1::GenerateResponse finished;
};

StreamResult RunStream(tessera::v1::Tessera::Stub& stub, const tessera::v1::GenerateRequest& request) {
  StreamResult result;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub.GenerateStream(&context, request);
  tessera::v1::GenerateStreamResponse event;
  while (reader->Read(&event)) {
    if (event.has_progress()) result.saw_progress = true;
    if (event.has_tokens()) result.tokens.insert(result.tokens.end(), event.tokens().token_ids().begin(), event.tokens().token_ids().end());
    if (event.has_finished()) result.finished = event.finished();
  }
  result.status = reader->Finish();
  return result;
}

TEST(ConcurrentStreamsTest, EightStreamsMatchReferenceAndMemoryReturnsToZero) {
  const std::string fixture = "bamba-tiny";
  std::unique_ptr<LocalCluster> cluster = StartCluster(fixture, 3, {"--min-shard-tokens", "32"});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  auto weights = LoadModelWeights(FixtureDir(fixture));
  ASSERT_TRUE(weights.ok());
  const GreedyRunner local = MakeCpuGreedyRunner(**weights);

  const std::vector<int64_t> lengths = {5, 17, 40, 64, 77, 100, 150, 200};
  const int kNewTokens = 16;
  std::vector<StreamResult> results(lengths.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < lengths.size(); ++i) {
    threads.emplace_back([&, i] {
      results[i] = RunStream(*stub, GreedyRequest(ReferencePrompt(fixture, lengths[i]), kNewTokens));
    });
  }
  for (std::thread& t : threads) t.join();

  for (size_t i = 0; i < lengths.size(); ++i) {
    SCOPED_TRACE("prompt length " + std::to_string(lengths[i]));
    ASSERT_TRUE(results[i].status.ok()) << results[i].status.error_message();
    absl::StatusOr<GreedyRun> want = local(ReferencePrompt(fixture, lengths[i]), kNewTokens);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(results[i].tokens, want->tokens);
    EXPECT_TRUE(results[i].saw_progress);
    EXPECT_EQ(results[i].finished.finish_reason(), tessera::v1::FINISH_REASON_LENGTH);
    EXPECT_EQ(results[i].finished.usage().prompt_tokens(), lengths[i]);
    EXPECT_EQ(results[i].finished.usage().completion_tokens(), kNewTokens);
    // min_shard_tokens 32: short prompts stay on one worker, long ones spread.
    EXPECT_EQ(results[i].finished.shards(), std::min<int64_t>(3, std::max<int64_t>(1, lengths[i] / 32)));
  }

  // Every worker's K/V and state memory returns to zero.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  tessera::v1::ServerInfo info;
  bool all_zero = false;
  while (!all_zero && std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext context;
    info.Clear();
    ASSERT_TRUE(stub->GetServerInfo(&context, tessera::v1::GetServerInfoRequest(), &info).ok());
    all_zero = info.workers_size() == 3;
    for (const auto& w : info.workers()) all_zero = all_zero && w.memory_used_bytes() == 0 && w.active_requests() == 0;
    if (!all_zero) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(all_zero) << info.DebugString();
  EXPECT_EQ(info.running_requests(), 0);
}

}  // namespace
}  // namespace tessera
