// Encode/Decode behaviour beyond the goldens: special tokens inside text,
// invalid UTF-8, unknown ids, long inputs, the word cache and thread safety.
#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_data.h"

namespace tessera {
namespace {

using testing::TokenizerJsonPath;

std::unique_ptr<Tokenizer> Load(const std::string& name) {
  auto tokenizer = Tokenizer::FromFile(TokenizerJsonPath(name));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

const char* const kMixedTexts[] = {
    "Hello, world! The state space model passes states between workers.",
    "数字 12345 and 3.14159 — emoji 🙂🚀 mixed, accents: café naïve Ångström",
    "def f(x):\n    return {\"k\": [1, 2, 3]}  # comment\n\n\ttabbed",
    "状态空间模型(SSM)与注意力机制是对偶的。",
    "don't you'll we've I'm   \u00a0\u3000 spaces",
};

TEST(TokenizerBehaviorTest, VocabularyAccessors) {
  auto gpt2 = Load("bpe512-gpt2split");
  auto llama = Load("bpe1000-llama3split");
  ASSERT_TRUE(gpt2 && llama);
  EXPECT_EQ(gpt2->vocab_size(), 512);
  EXPECT_EQ(llama->vocab_size(), 1000);
  EXPECT_EQ(gpt2->TokenToId("<|bos|>"), 1);
  EXPECT_EQ(gpt2->TokenToId("Ġthe").has_value(), true);
  EXPECT_EQ(gpt2->TokenToId("no such token"), std::nullopt);
  EXPECT_EQ(gpt2->IdToToken(2), "<|eos|>");
  EXPECT_EQ(gpt2->IdToToken(100000), std::nullopt);
  EXPECT_TRUE(gpt2->IsSpecialToken(0));
  EXPECT_FALSE(gpt2->IsSpecialToken(3));
}

TEST(TokenizerBehaviorTest, SpecialTokensInsideTextAreMatchedBeforePreTokenization) {
  auto tokenizer = Load("bpe1000-llama3split");
  ASSERT_TRUE(tokenizer);
  auto ids = tokenizer->Encode("a<|eos|>b <|pad|>", /*add_special_tokens=*/false);
  ASSERT_TRUE(ids.ok());
  const std::vector<int32_t> a = *tokenizer->Encode("a", false);
  const std::vector<int32_t> b_space = *tokenizer->Encode("b ", false);
  std::vector<int32_t> expected = a;
  expected.push_back(2);
  expected.insert(expected.end(), b_space.begin(), b_space.end());
  expected.push_back(0);
  EXPECT_EQ(*ids, expected);
  EXPECT_EQ(*tokenizer->Decode(*ids, /*skip_special_tokens=*/true), "ab ");
  EXPECT_EQ(*tokenizer->Decode(*ids, /*skip_special_tokens=*/false), "a<|eos|>b <|pad|>");
  // With add_special_tokens the template adds BOS in front, nothing else.
  auto with_bos = tokenizer->Encode("a<|eos|>b <|pad|>", true);
  ASSERT_TRUE(with_bos.ok());
  ASSERT_EQ(with_bos->size(), ids->size() + 1);
  EXPECT_EQ(with_bos->front(), 1);
}

TEST(TokenizerBehaviorTest, PartialSpecialTokenIsPlainText) {
  auto tokenizer = Load("bpe512-gpt2split");
  ASSERT_TRUE(tokenizer);
  auto ids = tokenizer->Encode("<|eos| <|bos", false);
  ASSERT_TRUE(ids.ok());
  for (int32_t id : *ids) EXPECT_GT(id, 2);
  EXPECT_EQ(*tokenizer->Decode(*ids, true), "<|eos| <|bos");
}

TEST(TokenizerBehaviorTest, InvalidUtf8IsRefusedWithItsOffset) {
  auto tokenizer = Load("bpe512-gpt2split");
  ASSERT_TRUE(tokenizer);
  const std::pair<std::string, size_t> cases[] = {
      {"\xff", 0},
      {"abc\xc3", 3},
      {"ok \xc0\xaf", 3},  // overlong
      {"\xed\xa0\x80", 0},
      {"x\xf4\x90\x80\x80", 1},  // surrogate, > U+10FFFF
      {"caf\xc3\xa9\x80", 5},    // stray continuation
  };
  for (const auto& [text, offset] : cases) {
    auto ids = tokenizer->Encode(text, true);
    ASSERT_FALSE(ids.ok()) << "accepted invalid UTF-8 at " << offset;
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(ids.status().message().find("offset " + std::to_string(offset)), std::string::npos) << ids.status();
  }
}

TEST(TokenizerBehaviorTest, DecodeRefusesIdsOutsideTheVocabulary) {
  auto tokenizer = Load("bpe512-gpt2split");
  ASSERT_TRUE(tokenizer);
  for (int32_t id : {512, -1, 1 << 30}) {
    auto text = tokenizer->Decode({3, id}, false);
    ASSERT_FALSE(text.ok());
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(TokenizerBehaviorTest, ByteLevelRoundTripIsLossless) {
  for (const char* name : {"bpe512-gpt2split", "bpe1000-llama3split"}) {
    auto tokenizer = Load(name);
    ASSERT_TRUE(tokenizer);
    for (const char* text : kMixedTexts) {
      auto ids = tokenizer->Encode(text, true);
      ASSERT_TRUE(ids.ok());
      EXPECT_EQ(*tokenizer->Decode(*ids, true), text);
    }
  }
}

TEST(TokenizerBehaviorTest, LongDegenerateInputs) {
  auto tokenizer = Load("bpe1000-llama3split");
  ASSERT_TRUE(tokenizer);
  const std::string inputs[] = {std::string(200000, 'a'), std::string(200000, ' '), std::string(100000, '\n'),
                                std::string(50000, '!') + std::string(50000, ' ') + "x"};
  for (const std::string& text : inputs) {
    auto ids = tokenizer->Encode(text, false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*tokenizer->Decode(*ids, false), text);
  }
}

TEST(TokenizerBehaviorTest, WordCacheDoesNotChangeResults) {
  auto tokenizer = Load("bpe512-gpt2split");
  ASSERT_TRUE(tokenizer);
  for (const char* text : kMixedTexts) {
    const std::vector<int32_t> cold = *tokenizer->Encode(text, true);
    const std::vector<int32_t> warm = *tokenizer->Encode(text, true);
    tokenizer->ClearCache();
    const std::vector<int32_t> cleared = *tokenizer->Encode(text, true);
    EXPECT_EQ(cold, warm);
    EXPECT_EQ(cold, cleared);
  }
}

// SentencePiece layouts: the legacy Prepend normalizer runs on every piece
// between special tokens, so a word right after <s> still gets "▁"; the
// newer Metaspace(prepend_scheme "first") only prepends at offset 0 of the
// input. Both match tokenizers (goldens); this pins the difference.
TEST(TokenizerBehaviorTest, MetaspaceFirstOnlyPrependsAtTheStartOfTheInput) {
  auto legacy = Load("bpe700-spm-legacy");
  auto metaspace = Load("bpe700-spm-metaspace");
  ASSERT_TRUE(legacy && metaspace);
  const auto after_bos = [](const Tokenizer& tokenizer) {
    const std::vector<int32_t> ids = *tokenizer.Encode("<s>Hello", false);
    EXPECT_EQ(ids.front(), 1);
    return std::vector<int32_t>(ids.begin() + 1, ids.end());
  };
  EXPECT_EQ(after_bos(*legacy), *legacy->Encode("Hello", false));
  EXPECT_NE(after_bos(*metaspace), *metaspace->Encode("Hello", false));
  EXPECT_EQ(*metaspace->Decode(*metaspace->Encode("Hello world", false), true), "Hello world");
}

// Normalized added tokens match the normalized text (NFKC + Lowercase here)
// and, like tokenizers 0.23, read back as their normalized content.
TEST(TokenizerBehaviorTest, NormalizedAddedTokensMatchNormalizedText) {
  auto tokenizer = Load("bpe700-spm-mixed");
  ASSERT_TRUE(tokenizer);
  const auto count = [&](const std::string& text, int32_t id) {
    const std::vector<int32_t> ids = *tokenizer->Encode(text, false);
    return std::count(ids.begin(), ids.end(), id);
  };
  EXPECT_EQ(count("HELLO   WORLD and hello world", 700), 2);  // "hello world"
  EXPECT_EQ(count("Ｍａｍｂａ, MAMBA, mamba", 701), 3);       // "Ｍａｍｂａ" normalizes to "mamba"
  EXPECT_EQ(tokenizer->IdToToken(701), "mamba");
  EXPECT_EQ(tokenizer->TokenToId("Ｍａｍｂａ"), 701);
}

TEST(TokenizerBehaviorTest, ConcurrentEncodeMatchesSerial) {
  auto tokenizer = Load("bpe1000-llama3split");
  ASSERT_TRUE(tokenizer);
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) texts.push_back(std::string(kMixedTexts[i % 5]) + " #" + std::to_string(i * 7919));
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& text : texts) expected.push_back(*tokenizer->Encode(text, true));
  tokenizer->ClearCache();
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          const size_t k = (i + t * 13 + round) % texts.size();
          auto ids = tokenizer->Encode(texts[k], true);
          if (!ids.ok() || *ids != expected[k]) ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace tessera
