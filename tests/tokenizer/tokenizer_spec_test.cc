// tokenizer.json loading: both merge spellings, and refusal (with the
// component named) of everything that would not encode like Hugging Face.
#include <string>
#include <vector>

#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_data.h"

namespace tessera {
namespace {

using Json = nlohmann::json;
using testing::ReadJson;
using testing::TokenizerDataDir;
using testing::TokenizerJsonPath;

Json Fixture(const std::string& name) { return ReadJson(TokenizerJsonPath(name)); }

void ExpectRefused(const Json& json, const std::string& message_part) {
  auto tokenizer = Tokenizer::FromJson(json.dump());
  ASSERT_FALSE(tokenizer.ok()) << "expected a refusal mentioning: " << message_part;
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tokenizer.status().message().find(message_part), std::string::npos) << tokenizer.status();
}

std::vector<std::string> SampleTexts(const std::string& name) {
  std::vector<std::string> texts;
  const Json golden = ReadJson(TokenizerDataDir(name) + "/golden_reference.json");
  for (const Json& c : golden["encode"]) texts.push_back(c["text"]);
  return texts;
}

class MergeSpellingTest : public ::testing::TestWithParam<std::string> {};

// The fixtures spell merges as ["a", "b"]; rewriting them as "a b" (and back)
// must not change a single id.
TEST_P(MergeSpellingTest, PairAndStringSpellingsEncodeIdentically) {
  Json pairs = Fixture(GetParam());
  ASSERT_TRUE(pairs["model"]["merges"][0].is_array());
  Json strings = pairs;
  for (Json& merge : strings["model"]["merges"])
    merge = merge[0].get<std::string>() + " " + merge[1].get<std::string>();
  Json pairs_again = strings;
  for (Json& merge : pairs_again["model"]["merges"]) {
    const std::string s = merge;
    merge = Json::array({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  auto a = Tokenizer::FromJson(pairs.dump());
  auto b = Tokenizer::FromJson(strings.dump());
  auto c = Tokenizer::FromJson(pairs_again.dump());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status() << b.status() << c.status();
  for (const std::string& text : SampleTexts(GetParam())) {
    auto ids_a = (*a)->Encode(text, true);
    auto ids_b = (*b)->Encode(text, true);
    auto ids_c = (*c)->Encode(text, true);
    ASSERT_TRUE(ids_a.ok() && ids_b.ok() && ids_c.ok());
    EXPECT_EQ(*ids_a, *ids_b) << text;
    EXPECT_EQ(*ids_a, *ids_c) << text;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MergeSpellingTest, ::testing::Values("bpe512-gpt2split", "bpe1000-llama3split"),
                         [](const auto& info) {
                           return info.param == "bpe512-gpt2split" ? "Gpt2Split" : "Llama3Split";
                         });

TEST(TokenizerSpecTest, RefusesUnsupportedComponentsByName) {
  const Json base = Fixture("bpe512-gpt2split");
  {
    Json j = base;
    j["normalizer"] = {{"type", "NFKC"}};
    ExpectRefused(j, "unsupported normalizer 'NFKC'");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Whitespace"}};
    ExpectRefused(j, "unsupported pre_tokenizer 'Whitespace'");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}}}};
    ExpectRefused(j, "unsupported pre_tokenizer 'Digits'");
  }
  {
    Json j = base;
    j["model"]["type"] = "WordPiece";
    ExpectRefused(j, "unsupported model 'WordPiece'");
  }
  {
    Json j = base;
    j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
    ExpectRefused(j, "unsupported decoder 'WordPiece'");
  }
  {
    Json j = base;
    j["decoder"] = nullptr;
    ExpectRefused(j, "unsupported decoder 'none'");
  }
  {
    Json j = base;
    j["post_processor"] = {{"type", "BertProcessing"}};
    ExpectRefused(j, "unsupported post_processor 'BertProcessing'");
  }
  {
    Json j = base;
    j["model"]["dropout"] = 0.1;
    ExpectRefused(j, "unsupported BPE dropout");
  }
  {
    Json j = base;
    j["model"]["continuing_subword_prefix"] = "##";
    ExpectRefused(j, "unsupported BPE continuing_subword_prefix");
  }
  {
    Json j = base;
    j["truncation"] = {{"max_length", 8}};
    ExpectRefused(j, "unsupported truncation");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers",
                           {{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}},
                            {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Isolated"}}}}};
    ExpectRefused(j, "unsupported pre_tokenizer 'ByteLevel' before other steps");
  }
}

TEST(TokenizerSpecTest, RefusesMalformedFiles) {
  const Json base = Fixture("bpe512-gpt2split");
  EXPECT_FALSE(Tokenizer::FromJson("").ok());
  EXPECT_FALSE(Tokenizer::FromJson("{").ok());
  EXPECT_FALSE(Tokenizer::FromJson("[1,2]").ok());
  {
    Json j = base;
    j["model"]["merges"].push_back(Json::array({"Ġ", "not-a-token"}));
    ExpectRefused(j, "'not-a-token', not in the vocab");
  }
  {
    Json j = base;
    j["model"]["merges"] = Json::array({"a b c"});
    ExpectRefused(j, "model.merges[0] must be two tokens separated by one space");
  }
  {
    Json j = base;
    j["model"]["vocab"]["zzz"] = -4;
    ExpectRefused(j, "must be in [0, 2^31-1)");
  }
  {
    Json j = base;
    j["added_tokens"].push_back({{"id", 5}, {"content", "<new>"}, {"special", true}});
    ExpectRefused(j, "'<new>' has id 5, which the vocab gives to");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
    ExpectRefused(j, "pre_tokenizer Split: invalid regex '(unclosed'");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
    ExpectRefused(j, "unsupported pre_tokenizer Split behavior 'Sideways'");
  }
  {
    Json j = base;
    j["post_processor"]["single"][0]["SpecialToken"]["id"] = "<|nope|>";
    ExpectRefused(j, "'<|nope|>', missing from special_tokens");
  }
  {
    Json j = base;
    j["model"]["unk_token"] = "<unk>";
    ExpectRefused(j, "unk_token '<unk>' is not in the vocab");
  }
}

TEST(TokenizerSpecTest, FromFileReportsMissingFile) {
  auto tokenizer = Tokenizer::FromFile("/nonexistent/tokenizer.json");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
}

TEST(TokenizerSpecTest, AcceptsOlderFilesWithoutModelTypeOrUseRegex) {
  Json j = Fixture("bpe512-gpt2split");
  j["model"].erase("type");
  j["pre_tokenizer"].erase("use_regex");  // defaults to true, as in HF
  auto old = Tokenizer::FromJson(j.dump());
  auto now = Tokenizer::FromFile(TokenizerJsonPath("bpe512-gpt2split"));
  ASSERT_TRUE(old.ok() && now.ok()) << old.status();
  EXPECT_EQ(*(*old)->Encode("Hello, world!", true), *(*now)->Encode("Hello, world!", true));
}

}  // namespace
}  // namespace tessera
