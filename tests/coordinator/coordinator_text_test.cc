// Text in, text out through the real coordinator server against fake
// workers: a text prompt reaches the workers as the tokenizer's ids, answers
// carry the completion's text (whole characters per stream delta), Tokenize
// and Detokenize work, and without a tokenizer text is FAILED_PRECONDITION
// while token ids still work.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/served_model.h"
#include "rpc/grpc_util.h"
#include "services/coordinator_service.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tests/coordinator/fake_text_model.h"
#include "tests/coordinator/fake_worker.h"
#include "tests/coordinator/utf8_check.h"

namespace tessera {
namespace {

using ::tessera::testing::FakeTextModel;
using ::tessera::testing::FakeWorker;
using ::tessera::testing::FakeWorkerScript;
using ::tessera::testing::IsValidUtf8;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr const char* kTokenizerPath = ::tessera::testing::kFakeTextTokenizerPath;
// golden_shared.json of that tokenizer: "Hello, world!" with the template's BOS.
const std::vector<int32_t> kHelloWorldIds = {1, 42, 71, 460, 81, 14, 278, 261, 78, 70, 3};

class CoordinatorTextTest : public ::testing::Test {
 protected:
  void Start(bool with_tokenizer, std::vector<int32_t> worker_tokens = {300, 301, 302, 303, 304}) {
    CoordinatorOptions options;
    options.min_shard_tokens = 8;
    options.health_interval = absl::Milliseconds(50);
    options.cancel_poll_interval = absl::Milliseconds(10);
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
        CoordinatorServer::Start("127.0.0.1:0", FakeTextModel(with_tokenizer), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Tessera::NewStub(MakeChannel(server_->address()));
    FakeWorkerScript script;
    script.vocab_size = 512;
    script.tokens = std::move(worker_tokens);
    worker_ = FakeWorker::Start(script);
    ASSERT_NE(worker_, nullptr);
    ASSERT_TRUE(worker_->RegisterWith(server_->internal_address()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    worker_.reset();
  }

  grpc::Status Generate(const v1::GenerateRequest& request, v1::GenerateResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Generate(&context, request, response);
  }

  std::string Decode(const std::vector<int32_t>& ids) {
    return *server_->coordinator().model().tokenizer->Decode(ids, /*skip_special_tokens=*/true);
  }

  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::Tessera::Stub> stub_;
  std::unique_ptr<FakeWorker> worker_;
};

v1::GenerateRequest TextRequest(const std::string& text, int max_new_tokens) {
  v1::GenerateRequest request;
  request.set_prompt_text(text);
  request.mutable_stopping()->set_max_new_tokens(max_new_tokens);
  return request;
}

TEST_F(CoordinatorTextTest, TextPromptReachesTheWorkersAsTokenIdsAndTheAnswerHasText) {
  Start(/*with_tokenizer=*/true);
  v1::GenerateRequest request = TextRequest("Hello, world!", 5);
  request.set_add_special_tokens(true);
  v1::GenerateResponse response;
  const grpc::Status status = Generate(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(worker_->Requests().size(), 1u);
  EXPECT_THAT(worker_->Requests()[0].token_ids(), ElementsAreArray(kHelloWorldIds));
  EXPECT_EQ(response.usage().prompt_tokens(), static_cast<int>(kHelloWorldIds.size()));
  EXPECT_THAT(response.token_ids(), ElementsAre(300, 301, 302, 303, 304));
  EXPECT_EQ(response.text(), Decode({300, 301, 302, 303, 304}));
  EXPECT_FALSE(response.text().empty());

  // Without the template's tokens the text is encoded as it is.
  request.set_add_special_tokens(false);
  ASSERT_TRUE(Generate(request, &response).ok());
  EXPECT_THAT(worker_->Requests()[1].token_ids(),
              ElementsAreArray(std::vector<int32_t>(kHelloWorldIds.begin() + 1, kHelloWorldIds.end())));
}

TEST_F(CoordinatorTextTest, StreamDeltasCarryWholeCharactersThatJoinToTheText) {
  // The workers "generate" an emoji and CJK whose characters span several tokens.
  const std::string want = "\xF0\x9F\x99\x82\xF0\x9F\x9A\x80 \xE7\x8A\xB6\xE6\x80\x81";
  const std::vector<int32_t> tokens = *(*Tokenizer::FromFile(kTokenizerPath))->Encode(want, false);
  Start(true, tokens);

  grpc::ClientContext context;
  auto reader = stub_->GenerateStream(&context, TextRequest("Hi", static_cast<int>(tokens.size())));
  v1::GenerateStreamResponse message;
  std::string joined;
  std::vector<int32_t> streamed;
  bool finished = false;
  while (reader->Read(&message)) {
    if (message.has_tokens()) {
      EXPECT_TRUE(IsValidUtf8(message.tokens().text())) << message.DebugString();
      joined += message.tokens().text();
      streamed.insert(streamed.end(), message.tokens().token_ids().begin(), message.tokens().token_ids().end());
    }
    if (message.has_finished()) {
      finished = true;
      EXPECT_TRUE(message.finished().text().empty()) << "the deltas carried it";
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(finished);
  EXPECT_EQ(streamed, tokens);
  EXPECT_EQ(joined, want);
}

TEST_F(CoordinatorTextTest, BothPromptFormsOrNeitherAreInvalid) {
  Start(true);
  v1::GenerateRequest request = TextRequest("Hello", 2);
  request.add_prompt_token_ids(5);
  v1::GenerateResponse response;
  grpc::Status status = Generate(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("give prompt_token_ids or prompt_text, not both"));
  status = Generate(TextRequest("", 2), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("the prompt is empty"));
  // A text prompt is validated as the ids it becomes.
  status = Generate(TextRequest("Hello", -1), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("max_new_tokens must be >= 0"));
  EXPECT_EQ(worker_->StartedShards(), 0);
}

TEST_F(CoordinatorTextTest, TokenizeAndDetokenize) {
  Start(true);
  grpc::ClientContext context;
  v1::TokenizeRequest tokenize;
  tokenize.set_text("Hello, world!");
  tokenize.set_add_special_tokens(true);
  v1::TokenizeResponse ids;
  ASSERT_TRUE(stub_->Tokenize(&context, tokenize, &ids).ok());
  EXPECT_THAT(ids.token_ids(), ElementsAreArray(kHelloWorldIds));

  grpc::ClientContext detokenize_context;
  v1::DetokenizeRequest detokenize;
  detokenize.mutable_token_ids()->Add(kHelloWorldIds.begin(), kHelloWorldIds.end());
  v1::DetokenizeResponse text;
  ASSERT_TRUE(stub_->Detokenize(&detokenize_context, detokenize, &text).ok());
  EXPECT_EQ(text.text(), "Hello, world!");
  grpc::ClientContext keep_context;
  detokenize.set_keep_special_tokens(true);
  ASSERT_TRUE(stub_->Detokenize(&keep_context, detokenize, &text).ok());
  EXPECT_EQ(text.text(), "<|bos|>Hello, world!");

  grpc::ClientContext bad_context;
  detokenize.add_token_ids(512);
  const grpc::Status bad = stub_->Detokenize(&bad_context, detokenize, &text);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad.error_message();
  EXPECT_THAT(bad.error_message(), HasSubstr("512"));

  grpc::ClientContext info_context;
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&info_context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.tokenizer_path(), kTokenizerPath);
}

TEST_F(CoordinatorTextTest, WithoutATokenizerTextIsAFailedPreconditionAndIdsStillWork) {
  Start(/*with_tokenizer=*/false);
  v1::GenerateResponse response;
  const grpc::Status text = Generate(TextRequest("Hello", 2), &response);
  EXPECT_EQ(text.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(text.error_message(), "this server has no tokenizer (start the coordinator with --tokenizer)");
  grpc::ClientContext context;
  v1::TokenizeResponse ids;
  EXPECT_EQ(stub_->Tokenize(&context, v1::TokenizeRequest(), &ids).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  v1::GenerateRequest request;
  request.add_prompt_token_ids(5);
  request.mutable_stopping()->set_max_new_tokens(3);
  ASSERT_TRUE(Generate(request, &response).ok());
  EXPECT_EQ(response.token_ids_size(), 3);
  EXPECT_TRUE(response.text().empty());
}

TEST(AttachTokenizerTest, RefusesATokenizerLargerThanTheModelsVocabulary) {
  ServedModel model;
  model.model_path = "/nowhere/small";
  model.vocab_size = 64;
  const absl::Status status = AttachTokenizer(kTokenizerPath, model);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("(vocab size 512), beyond the model's vocab_size 64"));
  EXPECT_EQ(model.tokenizer, nullptr);
  EXPECT_EQ(AttachTokenizer("/nowhere/tokenizer.json", model).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tessera
