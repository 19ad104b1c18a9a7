// The hardening findings reproduced against real processes (a coordinator
// and 3 workers of bamba-tiny on 127.0.0.1, CPU), as an attacker on the same
// host would: each now fails to get in or to harm the cluster.
//   2. AttendKv with guessed ids (req-1 … req-64, as ids used to be) while a
//      client's request decodes: NOT_FOUND for every guess, and the
//      client's request is untouched.
//   9. Requests placed just after a worker died (before the coordinator
//      noticed) succeed on the others, and so does the first multi-shard
//      request after the worker rejoins.
//  11. Invalid UTF-8 in prompt_text is INVALID_ARGUMENT naming the byte
//      offset (it was INTERNAL with an empty message); a 100 MB text is
//      refused by its byte bound before tokenizing (it was tokenized for
//      19 s first).
#include <chrono>
#include <cstdio>
#include <thread>

#include "tests/e2e/cluster_fixture.h"
#include "tessera/v1/worker.grpc.pb.h"

namespace tessera {
namespace {

const std::string kTokenizerPath = std::string(TESSERA_TEST_DATA_DIR) + "/tokenizers/bpe512-gpt2split/tokenizer.json";

std::vector<std::string> WorkerAddresses(v1::Tessera::Stub& stub) {
  grpc::ClientContext context;
  v1::ServerInfo info;
  EXPECT_TRUE(stub.GetServerInfo(&context, v1::GetServerInfoRequest(), &info).ok());
  std::vector<std::string> addresses;
  for (const v1::WorkerInfo& worker : info.workers()) addresses.push_back(worker.address());
  return addresses;
}

grpc::Status Generate(v1::Tessera::Stub& stub, const v1::GenerateRequest& request, v1::GenerateResponse* response,
                      std::chrono::seconds deadline = std::chrono::seconds(60)) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline);
  return stub.Generate(&context, request, response);
}

TEST(HardeningTest, GuessedRequestIdsReadNoKvWhileARequestDecodes) {
  const std::string fixture = "bamba-tiny";
  std::unique_ptr<LocalCluster> cluster = StartCluster(fixture, 3, {"--min-shard-tokens", "1"});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  const std::vector<std::string> workers = WorkerAddresses(*stub);
  ASSERT_EQ(workers.size(), 3u);

  // A client's request over all three workers, decoding.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub->GenerateStream(&context, GreedyRequest(ReferencePrompt(fixture, 200), 1500));
  v1::GenerateStreamResponse event;
  int tokens = 0;
  while (tokens < 5 && reader->Read(&event)) tokens += event.has_tokens() ? event.tokens().token_ids_size() : 0;
  ASSERT_GE(tokens, 5);

  // The attacker guesses ids as they used to be made, at every worker.
  int64_t answered = 0, not_found = 0;
  for (const std::string& address : workers) {
    auto worker = v1::Worker::NewStub(MakeChannel(address));
    for (int n = 1; n <= 64; ++n) {
      v1::AttendKvRequest query;
      query.set_request_id("req-" + std::to_string(n));
      query.set_q_len(1);
      query.set_q_position0(200);
      for (int i = 0; i < 64; ++i) query.add_q(0.5f);
      grpc::ClientContext attack;
      attack.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      v1::AttendKvResponse response;
      const grpc::Status status = worker->AttendKv(&attack, query, &response);
      answered += status.ok() ? 1 : 0;
      not_found += status.error_code() == grpc::StatusCode::NOT_FOUND ? 1 : 0;
    }
  }
  EXPECT_EQ(answered, 0);
  EXPECT_EQ(not_found, 3 * 64);

  // The client's request is untouched.
  while (reader->Read(&event)) tokens += event.has_tokens() ? event.tokens().token_ids_size() : 0;
  const grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(tokens, 1500);
}

TEST(HardeningTest, RequestsPlacedJustAfterAWorkerDiedSucceedAndSoDoesTheFirstAfterItRejoins) {
  const std::string fixture = "bamba-tiny";
  std::unique_ptr<LocalCluster> cluster = StartCluster(fixture, 3, {"--min-shard-tokens", "1"});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);

  ASSERT_TRUE(cluster->KillWorker(1).ok());
  // At once, before the coordinator's health checks can notice: 4 requests
  // that plan shards on every worker it believes ready.
  std::vector<grpc::Status> statuses(4);
  std::vector<v1::GenerateResponse> responses(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      statuses[i] = Generate(*stub, GreedyRequest(ReferencePrompt(fixture, 60 + 20 * i), 8), &responses[i]);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    EXPECT_EQ(responses[i].token_ids_size(), 8);
  }

  // The worker rejoins; the very first multi-shard request succeeds.
  ASSERT_TRUE(cluster->RestartWorker(1).ok());
  ASSERT_TRUE(cluster->WaitForWorkersReady(3, std::chrono::seconds(30)).ok());
  v1::GenerateResponse response;
  const grpc::Status status = Generate(*stub, GreedyRequest(ReferencePrompt(fixture, 120), 8), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.shards(), 3);
}

TEST(HardeningTest, InvalidUtf8AndHugeTextsAreRefusedAtOnce) {
  std::unique_ptr<LocalCluster> cluster =
      StartCluster("bamba-tiny", 1, {"--tokenizer", kTokenizerPath, "--max-context-tokens", "4096"},
                   {"--max-context-tokens", "4096"});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  v1::GenerateRequest request;
  request.set_prompt_text(std::string("Hello \xff world", 13));
  request.mutable_stopping()->set_max_new_tokens(4);
  v1::GenerateResponse response;
  grpc::Status status = Generate(*stub, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("byte offset 6"), std::string::npos) << status.error_message();

  v1::TokenizeRequest tokenize;
  tokenize.set_text(std::string("\xc3(", 2));
  v1::TokenizeResponse tokens;
  grpc::ClientContext context;
  status = stub->Tokenize(&context, tokenize, &tokens);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("byte offset 0"), std::string::npos) << status.error_message();

  request.set_prompt_text(std::string(100'000'000, 'a'));
  const auto start = std::chrono::steady_clock::now();
  status = Generate(*stub, request, &response);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("must be <= 131072 bytes"), std::string::npos) << status.error_message();
  // The message comes from the byte bound, which the coordinator checks
  // before it tokenizes (tokenizing this text took 19 s). The time is printed,
  // not asserted: moving 100 MB alone takes seconds on a loaded CI machine.
  std::printf("100 MB prompt_text refused after %.2f s\n", seconds);

  request.set_prompt_text("Hello, world!");
  EXPECT_TRUE(Generate(*stub, request, &response).ok());
}

}  // namespace
}  // namespace tessera
