// The API features of issue 16 end to end: a real coordinator and two
// worker processes on 127.0.0.1 (bamba-tiny, the bpe512-gpt2split
// tokenizer, --http-listen 127.0.0.1:0 only, --max-queued-requests 2).
//  - The HTTP API through curl, unary and streamed (server-sent events ending
//    with [DONE]), gives exactly the gRPC API's text; stop strings that span
//    tokens end both APIs, unary and streamed, before the match.
//  - OpenAI's official Node.js client (npm `openai`, installed by the ctest
//    fixture openai_npm; this test skips, saying why, only when npm could not
//    install it) lists the model, completes, streams, stops, and gets 400
//    for n = 2 and 404 for chat.
//  - Penalties and logit_bias reach the real sampler: greedy tokens equal the
//    argmax of a reference applied to the returned logits; logprobs equal the
//    log-softmax of the returned logits.
//  - Abort ends a waiting and a running request, and every worker's memory
//    goes back to 0.
#include <stdio.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "nlohmann/json.hpp"
#include "tests/coordinator/utf8_check.h"
#include "tests/e2e/cluster_fixture.h"

namespace tessera {
namespace {

using ::nlohmann::json;
using ::tessera::testing::IsValidUtf8;

const std::string kTokenizerPath = std::string(TESSERA_TEST_DATA_DIR) + "/tokenizers/bpe512-gpt2split/tokenizer.json";
constexpr char kPrompt[] = "Once upon a time, in a land far away";
constexpr char kModelName[] = "bamba-tiny";  // the fixture directory's name

// Runs `command` (a shell command line built from quoted words); its stdout.
std::string RunShell(const std::string& command, int* exit_code = nullptr) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t got = 0;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, got);
  const int status = pclose(pipe);
  if (exit_code != nullptr) *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string Quoted(const std::string& word) {
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> DataLines(const std::string& body) {
  std::vector<std::string> events;
  std::stringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("data: ", 0) == 0) events.push_back(line.substr(6));
  }
  return events;
}

std::vector<double> LogSoftmax(const float* row, int vocab) {
  double max = -INFINITY;
  for (int i = 0; i < vocab; ++i) max = std::max<double>(max, row[i]);
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(row[i] - max);
  std::vector<double> out(vocab);
  for (int i = 0; i < vocab; ++i) out[i] = row[i] - max - std::log(sum);
  return out;
}

class OpenAIHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // 1 MiB of K/V per worker (~1966 tokens of bamba-tiny each), so that two
    // long requests cannot run at once.
    cluster_ = StartCluster(kModelName, 2,
                            {"--min-shard-tokens", "1", "--tokenizer", kTokenizerPath, "--http-listen", "127.0.0.1:0",
                             "--max-queued-requests", "2"},
                            {"--memory-budget-mb", "1"})
                   .release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    ASSERT_FALSE(cluster_->http_address().empty()) << "the coordinator printed no HTTP address";
    stub_ = ClientFor(*cluster_);
  }

  std::string Url(const std::string& path) const { return "http://" + cluster_->http_address() + path; }

  json CurlJson(const json& body, int* exit_code = nullptr) {
    const std::string out = RunShell("curl -sS --max-time 60 -X POST -H 'Content-Type: application/json' --data-binary " +
                                    Quoted(body.dump()) + " " + Quoted(Url("/v1/completions")),
                                exit_code);
    return json::parse(out, nullptr, false);
  }

  std::string CurlStream(const json& body) {
    return RunShell("curl -sS -N --max-time 60 -X POST -H 'Content-Type: application/json' --data-binary " +
               Quoted(body.dump()) + " " + Quoted(Url("/v1/completions")));
  }

  // The HTTP defaults' gRPC twin: a text prompt with the template's tokens, greedy.
  v1::GenerateRequest GrpcRequest(int max_new_tokens) {
    v1::GenerateRequest request;
    request.set_prompt_text(kPrompt);
    request.set_add_special_tokens(true);
    request.mutable_stopping()->set_max_new_tokens(max_new_tokens);
    request.mutable_stopping()->set_ignore_eos(true);
    return request;
  }

  v1::GenerateResponse Generate(const v1::GenerateRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::GenerateResponse response;
    const grpc::Status status = stub_->Generate(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::string StreamText(const v1::GenerateRequest& request, v1::FinishReason* reason) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub_->GenerateStream(&context, request);
    v1::GenerateStreamResponse event;
    std::string text;
    while (reader->Read(&event)) {
      if (event.has_tokens()) text += event.tokens().text();
      if (event.has_finished()) *reason = event.finished().finish_reason();
    }
    EXPECT_TRUE(reader->Finish().ok());
    return text;
  }

  json Completion(int max_tokens) const {
    return {{"model", kModelName}, {"prompt", kPrompt}, {"max_tokens", max_tokens}, {"temperature", 0},
            {"ignore_eos", true}};
  }

  // A stop string from the greedy completion that spans a token boundary
  // (whole characters), and the text the completion must stop with.
  void PickStop(const v1::GenerateResponse& full, std::string* stop, std::string* before) {
    const std::string& text = full.text();
    for (int k = 3; k + 2 < full.token_ids_size(); ++k) {
      grpc::ClientContext context;
      v1::DetokenizeRequest request;
      request.mutable_token_ids()->Add(full.token_ids().begin(), full.token_ids().begin() + k);
      v1::DetokenizeResponse prefix;
      ASSERT_TRUE(stub_->Detokenize(&context, request, &prefix).ok());
      const size_t cut = prefix.text().size();
      if (cut < 2 || cut + 2 > text.size() || text.compare(0, cut, prefix.text()) != 0) continue;
      for (size_t begin = cut - 2; begin < cut; ++begin) {
        for (size_t end = cut + 1; end <= std::min(text.size(), cut + 4); ++end) {
          const std::string candidate = text.substr(begin, end - begin);
          if (!IsValidUtf8(candidate)) continue;
          *stop = candidate;
          *before = text.substr(0, text.find(candidate));
          return;
        }
      }
    }
    FAIL() << "no stop string spanning tokens in: " << text;
  }

  static LocalCluster* cluster_;
  std::unique_ptr<v1::Tessera::Stub> stub_;
};

LocalCluster* OpenAIHttpTest::cluster_ = nullptr;

TEST_F(OpenAIHttpTest, CurlUnaryAndStreamGiveTheGrpcText) {
  const v1::GenerateResponse grpc_answer = Generate(GrpcRequest(12));
  ASSERT_EQ(grpc_answer.token_ids_size(), 12);
  const json unary = CurlJson(Completion(12));
  ASSERT_TRUE(unary.is_object()) << unary.dump();
  ASSERT_TRUE(unary.contains("choices")) << unary.dump();
  EXPECT_EQ(unary["choices"][0]["text"], grpc_answer.text());
  EXPECT_EQ(unary["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(unary["usage"]["completion_tokens"], 12);
  EXPECT_EQ(unary["usage"]["prompt_tokens"], grpc_answer.usage().prompt_tokens());

  json streamed = Completion(12);
  streamed["stream"] = true;
  streamed["stream_options"] = {{"include_usage", true}};
  const std::vector<std::string> events = DataLines(CurlStream(streamed));
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  json usage;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    if (chunk.contains("usage") && !chunk["usage"].is_null()) usage = chunk["usage"];
    if (!chunk["choices"].empty()) text += chunk["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, grpc_answer.text());
  EXPECT_EQ(usage["completion_tokens"], 12);

  int code = 0;
  const std::string health = RunShell("curl -sS -o /dev/null -w '%{http_code}' " + Quoted(Url("/health")), &code);
  EXPECT_EQ(health, "200");
  json n2 = Completion(3);
  n2["n"] = 2;
  EXPECT_EQ(RunShell("curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary " +
                Quoted(n2.dump()) + " " + Quoted(Url("/v1/completions"))),
            "400");
}

TEST_F(OpenAIHttpTest, StopStringsAcrossTokensEndBothApisUnaryAndStreamed) {
  const v1::GenerateResponse full = Generate(GrpcRequest(24));
  std::string stop, before;
  PickStop(full, &stop, &before);
  SCOPED_TRACE("stop " + stop);
  v1::GenerateRequest request = GrpcRequest(24);
  request.mutable_stopping()->add_stop_strings(stop);
  const v1::GenerateResponse unary = Generate(request);
  EXPECT_EQ(unary.text(), before);
  EXPECT_EQ(unary.finish_reason(), v1::FINISH_REASON_STOP_STRING);
  EXPECT_LT(unary.token_ids_size(), 24);
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
  EXPECT_EQ(StreamText(request, &reason), before);
  EXPECT_EQ(reason, v1::FINISH_REASON_STOP_STRING);

  json body = Completion(24);
  body["stop"] = stop;
  const json http = CurlJson(body);
  EXPECT_EQ(http["choices"][0]["text"], before) << http.dump();
  EXPECT_EQ(http["choices"][0]["finish_reason"], "stop");
  body["stream"] = true;
  std::string streamed;
  for (const std::string& event : DataLines(CurlStream(body))) {
    if (event == "[DONE]") continue;
    streamed += json::parse(event)["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(streamed, before);
}

TEST_F(OpenAIHttpTest, OpenAIsNodeClient) {
  const std::string npm_dir = TESSERA_OPENAI_NPM_DIR;
  if (!std::filesystem::exists(npm_dir + "/node_modules/openai/package.json")) {
    std::ifstream log(npm_dir + "/npm-install.log");
    std::stringstream why;
    why << log.rdbuf();
    GTEST_SKIP() << "npm could not install OpenAI's client (ctest fixture openai_npm): " << why.str();
  }
  const v1::GenerateResponse full = Generate(GrpcRequest(10));
  std::string stop, before;
  PickStop(full, &stop, &before);
  int code = 0;
  const std::string out =
      RunShell("cd " + Quoted(npm_dir) + " && NODE_PATH=" + Quoted(npm_dir + "/node_modules") +
              " OPENAI_API_KEY=unused TESSERA_HTTP_BASE_URL=" + Quoted(Url("/v1")) + " TESSERA_MODEL=" +
              Quoted(kModelName) + " TESSERA_PROMPT=" + Quoted(kPrompt) + " TESSERA_STOP=" + Quoted(stop) +
              " timeout 120 node " + Quoted(TESSERA_OPENAI_CLIENT_SCRIPT) + " 2>&1",
          &code);
  ASSERT_EQ(code, 0) << out;
  const json got = json::parse(out, nullptr, false);
  ASSERT_TRUE(got.is_object()) << out;
  EXPECT_EQ(got["models"], json::array({kModelName}));
  EXPECT_EQ(got["unary"]["text"], full.text());
  EXPECT_EQ(got["unary"]["finish_reason"], "length");
  EXPECT_EQ(got["unary"]["usage"]["completion_tokens"], 10);
  EXPECT_EQ(got["stream"]["text"], full.text());
  EXPECT_EQ(got["stream"]["finish_reason"], "length");
  EXPECT_EQ(got["stream"]["usage"]["completion_tokens"], 10);
  EXPECT_GE(got["stream"]["chunks"].get<int>(), 3);
  EXPECT_EQ(got["stopped"]["text"], before);
  EXPECT_EQ(got["stopped"]["finish_reason"], "stop");
  EXPECT_EQ(got["stopped_stream"]["text"], before);
  EXPECT_EQ(got["stopped_stream"]["finish_reason"], "stop");
  EXPECT_EQ(got["n2"]["status"], 400);
  EXPECT_EQ(got["chat"]["status"], 404);
  EXPECT_THAT(got["chat"]["message"].get<std::string>(), ::testing::HasSubstr("chat templates"));
}

// Greedy with penalties and a bias: every chosen token is the argmax of the
// reference processing (worker/sampler.h's order) of the logits returned with it.
TEST_F(OpenAIHttpTest, PenaltiesAndBiasReachTheSampler) {
  v1::GenerateRequest request = GrpcRequest(16);
  request.set_return_logits(true);
  v1::SamplingParams& sampling = *request.mutable_sampling();
  sampling.set_repetition_penalty(1.8f);
  sampling.set_presence_penalty(0.7f);
  sampling.set_frequency_penalty(0.4f);
  (*sampling.mutable_logit_bias())[5] = 3.0f;
  (*sampling.mutable_logit_bias())[6] = -100.0f;
  const v1::GenerateResponse response = Generate(request);
  ASSERT_EQ(response.token_ids_size(), 16);
  const int vocab = response.token_logits().vocab_size();
  ASSERT_EQ(response.token_logits().rows(), 16);
  std::vector<int32_t> prompt(response.prompt_logits().rows());
  {
    grpc::ClientContext context;
    v1::TokenizeRequest tokenize;
    tokenize.set_text(kPrompt);
    tokenize.set_add_special_tokens(true);
    v1::TokenizeResponse ids;
    ASSERT_TRUE(stub_->Tokenize(&context, tokenize, &ids).ok());
    prompt.assign(ids.token_ids().begin(), ids.token_ids().end());
  }
  std::map<int32_t, int> counts;
  std::vector<bool> seen(vocab, false);
  for (int32_t id : prompt) seen[id] = true;
  int differs_from_plain_argmax = 0;
  for (int i = 0; i < 16; ++i) {
    const float* raw = response.token_logits().values().data() + static_cast<size_t>(i) * vocab;
    std::vector<float> row(raw, raw + vocab);
    row[5] += 3.0f;
    row[6] += -100.0f;
    for (int id = 0; id < vocab; ++id) {
      if (seen[id]) row[id] = row[id] > 0 ? row[id] / 1.8f : row[id] * 1.8f;
    }
    for (const auto& [id, count] : counts) row[id] -= 0.4f * count + 0.7f;
    const int32_t want = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
    ASSERT_EQ(response.token_ids(i), want) << "token " << i;
    differs_from_plain_argmax += want != static_cast<int32_t>(std::max_element(raw, raw + vocab) - raw);
    ++counts[want];
    seen[want] = true;
  }
  EXPECT_GT(differs_from_plain_argmax, 0) << "the penalties never changed a choice: the test proves nothing";
}

// Needs the decode loop to report SampledToken (worker/shard_runner.cc:
// Sampler::SampleDetailed and ShardEvents::TokenWithLogprobs).
TEST_F(OpenAIHttpTest, LogprobsAreTheLogSoftmaxOfTheReturnedLogits) {
  v1::GenerateRequest request = GrpcRequest(8);
  request.set_return_logits(true);
  request.mutable_sampling()->set_temperature(0.8f);
  request.mutable_sampling()->set_seed(11);
  request.mutable_sampling()->set_logprobs(3);
  request.mutable_sampling()->set_prompt_logprobs(2);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::GenerateResponse response;
  const grpc::Status status = stub_->Generate(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const int vocab = response.token_logits().vocab_size();
  ASSERT_EQ(response.logprobs_size(), response.token_ids_size());
  for (int i = 0; i < response.token_ids_size(); ++i) {
    const std::vector<double> reference =
        LogSoftmax(response.token_logits().values().data() + static_cast<size_t>(i) * vocab, vocab);
    const v1::TokenLogprobs& got = response.logprobs(i);
    EXPECT_EQ(got.token_id(), response.token_ids(i));
    EXPECT_NEAR(got.logprob(), reference[got.token_id()], 1e-4) << "token " << i;
    ASSERT_EQ(got.top_size(), 3);
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(got.top(k).logprob(), reference[got.top(k).token_id()], 1e-4);
    EXPECT_GE(got.top(0).logprob(), got.top(1).logprob());
    EXPECT_DOUBLE_EQ(reference[got.top(0).token_id()], *std::max_element(reference.begin(), reference.end()));
  }
  ASSERT_EQ(response.prompt_logprobs_size(), response.usage().prompt_tokens() - 1);
  for (int i = 0; i < response.prompt_logprobs_size(); ++i) {
    const std::vector<double> reference =
        LogSoftmax(response.prompt_logits().values().data() + static_cast<size_t>(i) * vocab, vocab);
    EXPECT_NEAR(response.prompt_logprobs(i).logprob(), reference[response.prompt_logprobs(i).token_id()], 1e-4);
  }
}

TEST_F(OpenAIHttpTest, AbortEndsAWaitingAndARunningRequestAndMemoryGoesBackToZero) {
  grpc::ClientContext info_context;
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&info_context, v1::GetModelInfoRequest(), &info).ok());
  const int64_t capacity = info.context_capacity_tokens();
  // Each request holds 3/5 of the cluster: the second must wait for the first.
  const int32_t new_tokens = static_cast<int32_t>(std::min<int64_t>(capacity * 2 / 5, 4000));
  const int32_t prompt_tokens = static_cast<int32_t>(capacity / 5);
  v1::GenerateRequest running = GreedyRequest(std::vector<int32_t>(prompt_tokens, 7), new_tokens);
  running.set_request_id("running-1");
  v1::GenerateRequest waiting = running;
  waiting.set_request_id("waiting-1");

  grpc::ClientContext running_context;
  running_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub_->GenerateStream(&running_context, running);
  v1::GenerateStreamResponse event;
  bool decoding = false;
  while (!decoding && reader->Read(&event)) decoding = event.has_tokens();
  ASSERT_TRUE(decoding);

  v1::GenerateResponse waited;
  grpc::Status waited_status;
  std::thread waiter([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    waited_status = stub_->Generate(&context, waiting, &waited);
  });
  auto server_info = [&] {
    grpc::ClientContext context;
    v1::ServerInfo server;
    EXPECT_TRUE(stub_->GetServerInfo(&context, v1::GetServerInfoRequest(), &server).ok());
    return server;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (server_info().queued_requests() != 1 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(server_info().queued_requests(), 1) << "the second request should wait for the first";
  auto abort = [&](const std::string& id) {
    grpc::ClientContext context;
    v1::AbortRequest request;
    request.set_request_id(id);
    v1::AbortResponse response;
    const grpc::Status status = stub_->Abort(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.aborted();
  };
  EXPECT_EQ(abort("waiting-1"), 1);
  waiter.join();
  ASSERT_TRUE(waited_status.ok()) << waited_status.error_message();
  EXPECT_EQ(waited.finish_reason(), v1::FINISH_REASON_ABORTED);
  EXPECT_EQ(waited.token_ids_size(), 0);

  EXPECT_EQ(abort("running-1"), 1);
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
  int streamed = 0;
  while (reader->Read(&event)) {
    if (event.has_tokens()) streamed += event.tokens().token_ids_size();
    if (event.has_finished()) reason = event.finished().finish_reason();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(reason, v1::FINISH_REASON_ABORTED);
  EXPECT_LT(streamed, new_tokens) << "aborted before its end";

  // Every worker frees the request: memory back to 0.
  bool freed = false;
  const absl::Time free_deadline = absl::Now() + absl::Seconds(20);
  while (!freed && absl::Now() < free_deadline) {
    freed = true;
    const v1::ServerInfo server = server_info();
    for (const v1::WorkerInfo& worker : server.workers()) {
      freed &= worker.memory_used_bytes() == 0 && worker.active_requests() == 0;
    }
    if (!freed) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(freed) << server_info().DebugString();
}

}  // namespace
}  // namespace tessera
