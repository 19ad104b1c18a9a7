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
    j["normalizer"] = {{"type", "BertNormalizer"}};
    ExpectRefused(j, "normalizer.type 'BertNormalizer' is not supported");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Whitespace"}};
    ExpectRefused(j, "pre_tokenizer.type 'Whitespace' is not supported");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}}}};
    ExpectRefused(j, "pre_tokenizer.pretokenizers[0].type 'Digits' is not supported");
  }
  {
    Json j = base;
    j["model"]["type"] = "WordPiece";
    ExpectRefused(j, "model.type 'WordPiece' is not supported");
  }
  {
    Json j = base;
    j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
    ExpectRefused(j, "decoder.type 'WordPiece' is not supported");
  }
  {
    Json j = base;
    j["decoder"] = nullptr;
    ExpectRefused(j, "decoder null (tokens joined with spaces) is not supported");
  }
  {
    Json j = base;
    j["post_processor"] = {{"type", "BertProcessing"}};
    ExpectRefused(j, "post_processor.type 'BertProcessing' is not supported");
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
    ExpectRefused(j, "pre_tokenizer.pretokenizers[0].type 'ByteLevel' before other steps is not supported");
  }
}

// The components of published SentencePiece / NeoX files load; what is
// still unsupported inside them is refused with its JSON path.
TEST(TokenizerSpecTest, RefusesUnsupportedNormalizerAndDecoderStepsByPath) {
  const Json base = Fixture("bpe700-spm-legacy");
  const Json replace = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}};
  {
    Json j = base;
    j["normalizer"] = {{"type", "Sequence"},
                       {"normalizers",
                        {{{"type", "NFKC"}}, replace, {{"type", "Precompiled"}, {"precompiled_charsmap", "AA"}}}}};
    ExpectRefused(j, "normalizer.normalizers[2].type 'Precompiled' is not supported");
  }
  {
    Json j = base;
    j["normalizer"] = {{"type", "Sequence"},
                       {"normalizers", {{{"type", "Sequence"}, {"normalizers", {{{"type", "StripAccents"}}}}}}}};
    ExpectRefused(j, "normalizer.normalizers[0].normalizers[0].type 'StripAccents' is not supported");
  }
  {
    Json j = base;
    j["normalizer"] = {{"type", "Replace"}, {"pattern", "x"}, {"content", "y"}};
    ExpectRefused(j, "normalizer.pattern must be {\"Regex\": ...} or {\"String\": ...}");
  }
  {
    Json j = base;
    j["normalizer"] = {{"type", "Sequence"},
                       {"normalizers",
                        {replace, {{"type", "Replace"}, {"pattern", {{"Regex", "(a"}}}, {"content", ""}}}}};
    ExpectRefused(j, "normalizer.normalizers[1].pattern: invalid regex '(a'");
  }
  {
    Json j = base;
    j["normalizer"] = {{"type", "Prepend"}};
    ExpectRefused(j, "normalizer.prepend must be a string");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", false}};
    ExpectRefused(j, "pre_tokenizer.add_prefix_space false does not match prepend_scheme");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "sometimes"}};
    ExpectRefused(j, "pre_tokenizer.prepend_scheme must be 'first', 'always' or 'never'. Given: 'sometimes'");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", {{{"type", "Metaspace"}, {"replacement", "__"}}}}};
    ExpectRefused(j, "pre_tokenizer.pretokenizers[0].replacement must be one character. Given: '__'");
  }
  {
    Json j = base;
    j["decoder"]["decoders"][1] = {{"type", "CTC"}, {"pad_token", "<pad>"}};
    ExpectRefused(j, "decoder.decoders[1].type 'CTC' is not supported");
  }
  {
    Json j = base;
    j["decoder"]["decoders"][3].erase("start");
    ExpectRefused(j, "decoder.decoders[3].start must be a non-negative integer");
  }
  {
    Json j = base;
    j["decoder"]["decoders"].push_back(replace);
    ExpectRefused(j, "decoder.decoders[4].type 'Replace' after 'Fuse' is not supported");
  }
  {
    Json j = base;
    j["decoder"]["decoders"].push_back({{"type", "ByteLevel"}});
    ExpectRefused(j, "decoder.decoders[4].type 'ByteLevel' is only supported as the whole decoder");
  }
  {
    Json j = base;
    j["decoder"]["decoders"][0] = {{"type", "Sequence"}, {"decoders", {{{"type", "WordPiece"}}}}};
    ExpectRefused(j, "decoder.decoders[0].decoders[0].type 'WordPiece' is not supported");
  }
}

TEST(TokenizerSpecTest, MetaspaceDefaultsAndLegacyFields) {
  // Older files spell Metaspace with add_prefix_space (true: prepend always)
  // and str_rep; split defaults to true. Same ids as the explicit spelling.
  Json legacy = Fixture("bpe700-spm-metaspace");
  legacy["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", true},
                             {"str_rep", "\u2581"}};
  Json explicit_form = Fixture("bpe700-spm-metaspace");
  explicit_form["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  auto a = Tokenizer::FromJson(legacy.dump());
  auto b = Tokenizer::FromJson(explicit_form.dump());
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  for (const std::string& text : SampleTexts("bpe700-spm-metaspace")) {
    EXPECT_EQ(*(*a)->Encode(text, true), *(*b)->Encode(text, true)) << text;
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
    ExpectRefused(j, "pre_tokenizer.pattern: invalid regex '(unclosed'");
  }
  {
    Json j = base;
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
    ExpectRefused(j, "pre_tokenizer.behavior 'Sideways' is not supported");
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
