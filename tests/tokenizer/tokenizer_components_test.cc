// Single normalizers, pre-tokenizers and decoders against Hugging Face
// tokenizers (components/golden_components.json, from
// make_reference_golden.py): each component JSON on edge-case inputs
// (normal forms of composed/decomposed/compatibility text, Strip and
// Lowercase corners, Replace with empty matches, every Metaspace scheme,
// byte-fallback runs that are valid, cut or invalid, Strip/Metaspace before
// and after Fuse). A component tokenizers refuses must be refused here too.
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/tokenizer/decoder.h"
#include "coordinator/tokenizer/normalizer.h"
#include "coordinator/tokenizer/pre_tokenizer.h"
#include "coordinator/tokenizer/tokenizer_spec.h"
#include "coordinator/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_data.h"

namespace tessera {
namespace {

using Json = nlohmann::json;

// The smallest tokenizer.json around one component, as the generator builds it.
absl::StatusOr<TokenizerSpec> SpecWith(const std::string& kind, const Json& component) {
  Json doc = {{"version", "1.0"},     {"truncation", nullptr},    {"padding", nullptr},
              {"added_tokens", Json::array()}, {"normalizer", nullptr}, {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},     {"decoder", {{"type", "Fuse"}}},
              {"model", {{"type", "BPE"}, {"vocab", Json::object()}, {"merges", Json::array()}}}};
  doc[kind] = component;
  return ParseTokenizerSpec(doc.dump());
}

// Inputs with characters whose Unicode data changed after tokenizers'
// tables (unicode.h): U+32FF SQUARE ERA NAME REIWA (Unicode 12.1) has an
// NFKC/NFKD decomposition in utf8proc's tables only.
bool NewerThanTokenizersTables(const std::string& text) { return text.find("\u32FF") != std::string::npos; }

std::vector<Json> Entries(const std::string& kind) {
  const Json all = testing::ReadJson(testing::TokenizerDataDir("components") + "/golden_components.json");
  std::vector<Json> entries;
  for (const Json& entry : all) {
    if (entry["kind"] == kind) entries.push_back(entry);
  }
  return entries;
}

TEST(TokenizerComponentsTest, NormalizersMatchHuggingFace) {
  const std::vector<Json> entries = Entries("normalizer");
  ASSERT_GE(entries.size(), 20u);
  int compared = 0;
  for (const Json& entry : entries) {
    SCOPED_TRACE(entry["component"].dump());
    auto spec = SpecWith("normalizer", entry["component"]);
    ASSERT_EQ(spec.ok(), !entry.contains("load_error")) << spec.status();
    if (!spec.ok()) continue;
    auto normalizer = Normalizer::Create(spec->normalizer);
    ASSERT_TRUE(normalizer.ok()) << normalizer.status();
    for (const Json& c : entry["cases"]) {
      std::string text = c["input"];
      if (c.contains("error") || NewerThanTokenizersTables(text)) continue;
      SCOPED_TRACE(c["input"].dump());
      size_t lead = text.empty() ? 0 : Utf8SequenceLength(text, 0);
      ASSERT_TRUE((*normalizer)->Normalize(&text, &lead).ok());
      EXPECT_EQ(text, c["output"].get<std::string>());
      EXPECT_LE(lead, text.size());
      ++compared;
    }
  }
  EXPECT_GE(compared, 500);
}

TEST(TokenizerComponentsTest, PreTokenizersMatchHuggingFace) {
  const std::vector<Json> entries = Entries("pre_tokenizer");
  ASSERT_GE(entries.size(), 10u);
  int compared = 0;
  for (const Json& entry : entries) {
    SCOPED_TRACE(entry["component"].dump());
    auto spec = SpecWith("pre_tokenizer", entry["component"]);
    ASSERT_EQ(spec.ok(), !entry.contains("load_error")) << spec.status();
    if (!spec.ok()) continue;
    auto pre = PreTokenizer::Create(spec->pre_tokenizer);
    ASSERT_TRUE(pre.ok()) << pre.status();
    for (const Json& c : entry["cases"]) {
      if (c.contains("error")) continue;
      const std::string text = c["input"];
      SCOPED_TRACE(c["input"].dump());
      std::deque<std::string> storage;
      std::vector<std::string_view> words;
      // pre_tokenize_str sees the whole string, at offset 0.
      ASSERT_TRUE((*pre)->Run(text, text.empty() ? 0 : Utf8SequenceLength(text, 0), &storage, &words).ok());
      EXPECT_EQ(std::vector<std::string>(words.begin(), words.end()), c["output"].get<std::vector<std::string>>());
      ++compared;
    }
  }
  EXPECT_GE(compared, 150);
}

TEST(TokenizerComponentsTest, DecodersMatchHuggingFaceWholeAndStreamed) {
  const std::vector<Json> entries = Entries("decoder");
  ASSERT_GE(entries.size(), 15u);
  int compared = 0;
  for (const Json& entry : entries) {
    SCOPED_TRACE(entry["component"].dump());
    auto spec = SpecWith("decoder", entry["component"]);
    ASSERT_EQ(spec.ok(), !entry.contains("load_error")) << spec.status();
    if (!spec.ok()) continue;
    auto decoder = Decoder::Create(spec->decoder);
    ASSERT_TRUE(decoder.ok()) << decoder.status();
    for (const Json& c : entry["cases"]) {
      if (c.contains("error")) continue;  // tokenizers panicked (Strip cuts that cross)
      SCOPED_TRACE(c["input"].dump());
      const std::vector<std::string> tokens = c["input"];
      const std::vector<std::string_view> views(tokens.begin(), tokens.end());
      const std::string expected = c["output"];
      EXPECT_EQ((*decoder)->Decode(views), expected);
      DecoderStream stream(decoder->get());
      std::string streamed;
      for (std::string_view token : views) {
        std::string delta;
        stream.Push(token, &delta);
        EXPECT_EQ(Utf8FirstInvalid(delta), delta.size());
        streamed += delta;
      }
      stream.Finish(&streamed);
      EXPECT_EQ(streamed, expected);
      ++compared;
    }
  }
  EXPECT_GE(compared, 400);
}

}  // namespace
}  // namespace tessera
