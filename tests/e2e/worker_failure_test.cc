// Killing a worker mid-request fails that request with UNAVAILABLE within 5
// seconds instead of hanging; later requests succeed on the remaining
// workers; the restarted worker rejoins and takes shards again.
#include <thread>

#include "tests/e2e/cluster_fixture.h"

namespace tessera {
namespace {

TEST(WorkerFailureTest, KilledWorkerFailsRequestFastAndRejoinsAfterRestart) {
  const std::string fixture = "bamba-tiny";
  std::unique_ptr<LocalCluster> cluster =
      StartCluster(fixture, 3, {"--min-shard-tokens", "1", "--max-new-tokens-limit", "1000000"},
                   {"--memory-budget-mb", "1024", "--max-new-tokens-limit", "1000000"});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);

  // A long generation spread over all 3 workers.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub->GenerateStream(&context, GreedyRequest(ReferencePrompt(fixture, 200), 200000));
  tessera::v1::GenerateStreamResponse event;
  int tokens = 0;
  while (tokens < 5 && reader->Read(&event)) tokens += event.has_tokens() ? event.tokens().token_ids_size() : 0;
  ASSERT_GE(tokens, 5) << "the request should be decoding: " << reader->Finish().error_message();

  // Worker 0 holds the first shard's K/V, which every decode step reads.
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(cluster->KillWorker(0).ok());
  while (reader->Read(&event)) {
  }
  const grpc::Status status = reader->Finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_LT(seconds, 5.0);

  // The remaining two workers serve the next request.
  ASSERT_TRUE(cluster->WaitForWorkersReady(2, std::chrono::seconds(10)).ok());
  {
    grpc::ClientContext ctx;
    tessera::v1::GenerateResponse response;
    const grpc::Status s = stub->Generate(&ctx, GreedyRequest(ReferencePrompt(fixture, 77), 8), &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(response.token_ids_size(), 8);
    EXPECT_EQ(response.shards(), 2);
  }

  // The restarted worker rejoins and takes a shard again.
  ASSERT_TRUE(cluster->RestartWorker(0).ok());
  ASSERT_TRUE(cluster->WaitForWorkersReady(3, std::chrono::seconds(20)).ok());
  {
    grpc::ClientContext ctx;
    tessera::v1::GenerateResponse response;
    const grpc::Status s = stub->Generate(&ctx, GreedyRequest(ReferencePrompt(fixture, 77), 8), &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(response.shards(), 3);
  }
}

}  // namespace
}  // namespace tessera
