// Finding 7: after a coordinator restart its request ids started again at
// req-1 while the workers remembered 65,536 ended ids, so multi-shard
// requests failed UNAVAILABLE "request req-1 was cancelled". Here a
// Coordinator runs multi-shard requests over three real workers, is
// destroyed and made again over the same workers (a restart), and runs
// them again: every one succeeds, under random 128-bit ids.
#include <chrono>
#include <functional>
#include <thread>

#include "coordinator/coordinator.h"
#include "coordinator/served_model.h"
#include "gtest/gtest.h"
#include "tests/services/in_process_worker.h"

namespace tessera {
namespace {

using testing::InProcessWorker;

bool WaitFor(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

TEST(CoordinatorRestartTest, MultiShardRequestsWorkAcrossACoordinatorRestart) {
  const std::string dir = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/bamba-tiny";
  std::vector<std::unique_ptr<InProcessWorker>> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(InProcessWorker::Start(dir));
    ASSERT_NE(workers.back(), nullptr);
  }
  absl::StatusOr<ServedModel> model = LoadServedModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  CoordinatorOptions options;
  options.min_shard_tokens = 8;
  std::set<std::string> ids;
  for (int life = 0; life < 2; ++life) {
    SCOPED_TRACE(life == 0 ? "first coordinator" : "restarted coordinator");
    Coordinator coordinator(*model, options);
    for (const auto& w : workers) ASSERT_TRUE(coordinator.RegisterWorker(w->address()).ok());
    ASSERT_EQ(coordinator.GetModelInfo().workers_ready, 3);
    for (int i = 0; i < 4; ++i) {
      GenerateRequest request;
      for (int t = 0; t < 48; ++t) request.prompt_token_ids.push_back(3 + (t * 7) % 500);
      request.stopping.max_new_tokens = 4;
      IgnoreGenerateEvents events;
      absl::StatusOr<GenerateResult> result = coordinator.Generate(request, CallerContext(), events);
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_EQ(result->shards, 3);
      EXPECT_EQ(result->request_id.size(), 32u) << "a random 128-bit id in hex: " << result->request_id;
      EXPECT_TRUE(ids.insert(result->request_id).second) << "ids never repeat";
    }
  }
  for (const auto& w : workers) EXPECT_TRUE(WaitFor([&] { return w->MemoryUsed() == 0; }));
}

}  // namespace
}  // namespace tessera
