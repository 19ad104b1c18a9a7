// Golden tests: every case recorded from Hugging Face tokenizers must come
// out identically — golden_shared.json (the shared fixtures) and
// golden_reference.json (broader cases; see make_reference_golden.js and
// make_reference_golden.py).
#include <cctype>
#include <string>
#include <vector>

#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_data.h"

namespace tessera {
namespace {

using testing::ReadJson;
using testing::TokenizerDataDir;
using testing::TokenizerJsonPath;

std::vector<int32_t> Ids(const nlohmann::json& array) { return array.get<std::vector<int32_t>>(); }

class SharedGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SharedGoldenTest, EncodeAndDecodeMatchHuggingFace) {
  auto tokenizer = Tokenizer::FromFile(TokenizerJsonPath(GetParam()));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const nlohmann::json golden = ReadJson(TokenizerDataDir(GetParam()) + "/golden_shared.json");
  ASSERT_GE(golden.size(), 10u);
  for (const nlohmann::json& c : golden) {
    const std::string text = c["text"];
    SCOPED_TRACE(text.substr(0, 60));
    auto ids = (*tokenizer)->Encode(text, /*add_special_tokens=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, Ids(c["ids"]));
    auto ids_no_special = (*tokenizer)->Encode(text, /*add_special_tokens=*/false);
    ASSERT_TRUE(ids_no_special.ok()) << ids_no_special.status();
    EXPECT_EQ(*ids_no_special, Ids(c["ids_no_special"]));
    // golden_shared's "decoded" is HF decode(ids, skip_special_tokens=True).
    auto decoded = (*tokenizer)->Decode(Ids(c["ids"]), /*skip_special_tokens=*/true);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, c["decoded"].get<std::string>());
  }
}

std::string TestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name;
  for (char c : info.param) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name;
}

// The shared fixtures, then the layouts of published Mamba checkpoints'
// tokenizers (make_reference_golden.py): GPT-NeoX (NFC), SentencePiece BPE
// converted the legacy way (Prepend/Replace normalizer, byte fallback) and
// the newer way (Metaspace), and a crafted mix of the other components.
INSTANTIATE_TEST_SUITE_P(Fixtures, SharedGoldenTest,
                         ::testing::Values("bpe512-gpt2split", "bpe1000-llama3split", "bpe600-neox-nfc",
                                           "bpe700-spm-legacy", "bpe700-spm-metaspace", "bpe700-spm-mixed"),
                         TestName);

class ReferenceGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceGoldenTest, EncodeMatchesHuggingFace) {
  auto tokenizer = Tokenizer::FromFile(TokenizerJsonPath(GetParam()));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const nlohmann::json golden = ReadJson(TokenizerDataDir(GetParam()) + "/golden_reference.json");
  ASSERT_GE(golden["encode"].size(), 300u);
  int failures = 0;
  for (const nlohmann::json& c : golden["encode"]) {
    const std::string text = c["text"];
    SCOPED_TRACE(::testing::Message() << "text: " << nlohmann::json(text).dump());
    auto ids = (*tokenizer)->Encode(text, true);
    auto ids_no_special = (*tokenizer)->Encode(text, false);
    ASSERT_TRUE(ids.ok() && ids_no_special.ok()) << ids.status() << ids_no_special.status();
    EXPECT_EQ(*ids, Ids(c["ids"]));
    EXPECT_EQ(*ids_no_special, Ids(c["ids_no_special"]));
    auto decoded = (*tokenizer)->Decode(*ids, true);
    auto decoded_with_special = (*tokenizer)->Decode(*ids, false);
    ASSERT_TRUE(decoded.ok() && decoded_with_special.ok());
    EXPECT_EQ(*decoded, c["decoded"].get<std::string>());
    EXPECT_EQ(*decoded_with_special, c["decoded_with_special"].get<std::string>());
    if (::testing::Test::HasFailure() && ++failures > 5) FAIL() << "stopping after 5 failing cases";
  }
}

TEST_P(ReferenceGoldenTest, DecodeOfArbitraryIdsMatchesHuggingFace) {
  auto tokenizer = Tokenizer::FromFile(TokenizerJsonPath(GetParam()));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const nlohmann::json golden = ReadJson(TokenizerDataDir(GetParam()) + "/golden_reference.json");
  for (const nlohmann::json& c : golden["decode"]) {
    SCOPED_TRACE(c["ids"].dump());
    auto skip = (*tokenizer)->Decode(Ids(c["ids"]), true);
    auto keep = (*tokenizer)->Decode(Ids(c["ids"]), false);
    ASSERT_TRUE(skip.ok() && keep.ok());
    EXPECT_EQ(*skip, c["skip_special"].get<std::string>());
    EXPECT_EQ(*keep, c["keep_special"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, ReferenceGoldenTest,
                         ::testing::Values("bpe512-gpt2split", "bpe1000-llama3split", "bpe512-addedtokens",
                                           "bpe1000-splitbehaviors", "chars-unk-fused", "chars-unk-unfused",
                                           "bpe600-neox-nfc", "bpe700-spm-legacy", "bpe700-spm-metaspace",
                                           "bpe700-spm-mixed"),
                         TestName);

}  // namespace
}  // namespace tessera
