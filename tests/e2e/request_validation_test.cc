// Requests that can never work get INVALID_ARGUMENT naming the limit;
// momentarily full capacity gets RESOURCE_EXHAUSTED; cancelling a stream frees
// its memory on every worker.
#include <thread>

#include "tests/e2e/cluster_fixture.h"

namespace tessera {
namespace {

grpc::Status Generate(tessera::v1::Tessera::Stub& stub, const tessera::v1::GenerateRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  tessera::v1::GenerateResponse response;
  return stub.Generate(&context, request, &response);
}

void ExpectInvalid(const grpc::Status& status, const std::string& mention) {
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find(mention), std::string::npos) << status.error_message();
}

tessera::v1::ModelInfo GetInfo(tessera::v1::Tessera::Stub& stub) {
  grpc::ClientContext context;
  tessera::v1::ModelInfo info;
  EXPECT_TRUE(stub.GetModelInfo(&context, tessera::v1::GetModelInfoRequest(), &info).ok());
  return info;
}

TEST(RequestValidationTest, NeverWorkingRequestsAreInvalidAndFullIsExhausted) {
  // bamba-tiny: 512 bytes of K/V per token; 1 MiB budget: ~1966 tokens per worker.
  std::unique_ptr<LocalCluster> cluster =
      StartCluster("bamba-tiny", 2, {"--min-shard-tokens", "1", "--max-new-tokens-limit", "4096"},
                   {"--memory-budget-mb", "1"});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  const tessera::v1::ModelInfo info = GetInfo(*stub);
  ASSERT_GT(info.context_capacity_tokens(), 3000);
  ASSERT_LT(info.context_capacity_tokens(), 5000);
  EXPECT_EQ(info.workers_ready(), 2);

  ExpectInvalid(Generate(*stub, GreedyRequest({}, 4)), "prompt");
  ExpectInvalid(Generate(*stub, GreedyRequest({1, 512, 3}, 4)), "512");
  ExpectInvalid(Generate(*stub, GreedyRequest({1, 2, 3}, -1)), "max_new_tokens must be >= 0");
  ExpectInvalid(Generate(*stub, GreedyRequest({1, 2, 3}, 5000)), "4096");
  const std::vector<int32_t> too_long(info.context_capacity_tokens() + 1, 7);
  ExpectInvalid(Generate(*stub, GreedyRequest(too_long, 1)), std::to_string(info.context_capacity_tokens()));

  // Hold most of the capacity with a slow stream, then ask for more than is left.
  const int64_t big = info.context_capacity_tokens() * 3 / 4;
  grpc::ClientContext holder;
  auto reader = stub->GenerateStream(&holder, GreedyRequest(std::vector<int32_t>(big - 200, 5), 200));
  tessera::v1::GenerateStreamResponse event;
  bool decoding = false;
  while (!decoding && reader->Read(&event)) decoding = event.has_tokens();
  ASSERT_TRUE(decoding);
  const grpc::Status full = Generate(*stub, GreedyRequest(std::vector<int32_t>(big - 100, 5), 100));
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << full.error_message();

  // Cancelling the holder frees its memory everywhere; the same request then works.
  holder.TryCancel();
  while (reader->Read(&event)) {
  }
  reader->Finish();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (GetInfo(*stub).context_available_tokens() != info.context_capacity_tokens() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(GetInfo(*stub).context_available_tokens(), info.context_capacity_tokens());
  EXPECT_TRUE(Generate(*stub, GreedyRequest(std::vector<int32_t>(big - 100, 5), 4)).ok());
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// --max-context-tokens given to the coordinator and the workers is the served
// limit (GetModelInfo reports it beside the checkpoint's trained context) and
// a request past it is INVALID_ARGUMENT quoting it (workers re-check it too:
// tests/worker/shard_request_test.cc).
TEST(ContextLimitTest, TheOperatorsLimitIsServedAndReported) {
  std::unique_ptr<LocalCluster> cluster = StartCluster(
      "nemotronh-tiny", 2, {"--min-shard-tokens", "1", "--max-context-tokens", "300"}, {"--max-context-tokens", "300"});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  const tessera::v1::ModelInfo info = GetInfo(*stub);
  EXPECT_EQ(info.max_context_tokens(), 300);
  EXPECT_EQ(info.trained_context_tokens(), 4096);  // the fixture's max_position_embeddings
  EXPECT_LE(info.context_capacity_tokens(), 300);
  ExpectInvalid(Generate(*stub, GreedyRequest(std::vector<int32_t>(290, 7), 20)), "300");
  EXPECT_TRUE(Generate(*stub, GreedyRequest(std::vector<int32_t>(280, 7), 20)).ok());
}

TEST(ContextLimitTest, RaisedPastTheTrainedContext) {
  std::unique_ptr<LocalCluster> cluster =
      StartCluster("nemotronh-tiny", 1, {"--max-context-tokens", "8000"}, {"--max-context-tokens", "8000"});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  EXPECT_EQ(GetInfo(*stub).max_context_tokens(), 8000);
  // 4,500 tokens: past the 4,096 the checkpoint states, within what the operator allows.
  EXPECT_TRUE(Generate(*stub, GreedyRequest(std::vector<int32_t>(4500, 7), 2)).ok());
}

}  // namespace
}  // namespace tessera
