// StreamingDecoder: deltas are always whole UTF-8 characters, and their
// concatenation equals Tokenizer::Decode of the same ids.
#include "coordinator/tokenizer/streaming_decoder.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "coordinator/tokenizer/byte_level.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "coordinator/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_data.h"

namespace tessera {
namespace {

std::unique_ptr<Tokenizer> Load(const std::string& name) {
  auto tokenizer = Tokenizer::FromFile(testing::TokenizerJsonPath(name));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

// One id per byte: the single-byte token of each byte of `bytes`.
std::vector<int32_t> ByteTokens(const Tokenizer& tokenizer, std::string_view bytes) {
  std::vector<int32_t> ids;
  for (char c : bytes) {
    const auto id = tokenizer.TokenToId(ByteLevelCharOf(static_cast<uint8_t>(c)));
    EXPECT_TRUE(id.has_value());
    ids.push_back(id.value_or(0));
  }
  return ids;
}

// Feeds every id, checking each delta, and returns the concatenated text.
// `max_pending`: a ByteLevel decoder holds at most 3 bytes; a byte-fallback
// run is held whole.
std::string StreamAll(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool skip_special,
                      std::vector<std::string>* deltas = nullptr, size_t max_pending = 3) {
  StreamingDecoder decoder(&tokenizer, skip_special);
  std::string text;
  for (int32_t id : ids) {
    auto delta = decoder.Feed(id);
    EXPECT_TRUE(delta.ok()) << delta.status();
    if (!delta.ok()) continue;
    EXPECT_EQ(Utf8FirstInvalid(*delta), delta->size()) << "delta is not whole UTF-8";
    EXPECT_LE(decoder.pending_bytes(), max_pending);
    if (deltas != nullptr) deltas->push_back(*delta);
    text += *delta;
  }
  const std::string rest = decoder.Finish();
  EXPECT_EQ(Utf8FirstInvalid(rest), rest.size());
  if (deltas != nullptr) deltas->push_back(rest);
  return text + rest;
}

TEST(StreamingDecoderTest, MultiByteCharactersFedByteByByteComeOutWhole) {
  auto tokenizer = Load("bpe512-gpt2split");
  ASSERT_TRUE(tokenizer);
  const std::string text = "a\xC3\xA9\xE6\x95\xB0\xF0\x9F\x99\x82z";  // a é 数 🙂 z
  std::vector<std::string> deltas;
  EXPECT_EQ(StreamAll(*tokenizer, ByteTokens(*tokenizer, text), false, &deltas), text);
  // One delta per byte plus Finish: characters appear exactly when complete.
  const std::vector<std::string> expected = {"a", "", "\xC3\xA9",         "",  "", "\xE6\x95\xB0", "",
                                             "",  "", "\xF0\x9F\x99\x82", "z", ""};
  EXPECT_EQ(deltas, expected);
}

constexpr size_t kAnyPending = ~size_t{0};

TEST(StreamingDecoderTest, ConcatenatedDeltasEqualDecodeForRealEncodings) {
  for (const char* name : {"bpe512-gpt2split", "bpe1000-llama3split", "bpe600-neox-nfc", "bpe700-spm-legacy",
                           "bpe700-spm-metaspace", "bpe700-spm-mixed"}) {
    auto tokenizer = Load(name);
    ASSERT_TRUE(tokenizer);
    const bool byte_level = std::string(name).find("spm") == std::string::npos;
    for (const std::string text : {"emoji 🙂🚀 mixed 状态空间模型 café <|eos|> done 👩‍💻",
                                   "  leading <s>Hello</s> world\n\n  trailing  ", "e\u0301 한국어 ＡＢＣ"}) {
      auto ids = tokenizer->Encode(text, true);
      ASSERT_TRUE(ids.ok());
      for (bool skip : {true, false}) {
        EXPECT_EQ(StreamAll(*tokenizer, *ids, skip, nullptr, byte_level ? 3 : kAnyPending),
                  *tokenizer->Decode(*ids, skip))
            << name << " skip=" << skip;
      }
    }
  }
}

// Byte fallback: a character spelt as several <0xAB> tokens comes out whole,
// once the token after its run (or the end) shows the run is valid UTF-8.
TEST(StreamingDecoderTest, ByteFallbackCharactersComeOutWhole) {
  for (const char* name : {"bpe700-spm-legacy", "bpe700-spm-metaspace"}) {
    auto tokenizer = Load(name);
    ASSERT_TRUE(tokenizer);
    const std::vector<int32_t> ids = *tokenizer->Encode("a 🙂 b", false);
    std::vector<std::string> deltas;
    EXPECT_EQ(StreamAll(*tokenizer, ids, true, &deltas, kAnyPending), "a 🙂 b");
    for (const std::string& delta : deltas) {
      const bool has_lead_byte = delta.find('\xF0') != std::string::npos;
      EXPECT_EQ(has_lead_byte, delta.find("\xF0\x9F\x99\x82") != std::string::npos) << "the emoji comes whole";
      EXPECT_EQ(delta.find(kUtf8Replacement), std::string::npos);
    }
    const auto bytes = std::count_if(ids.begin(), ids.end(), [&](int32_t id) {
      return tokenizer->IdToToken(id)->substr(0, 3) == "<0x";
    });
    EXPECT_EQ(bytes, 4) << name << ": the emoji should be four byte-fallback tokens";
  }
}

// Metaspace / Strip decoders: the first token's leading space is not emitted.
TEST(StreamingDecoderTest, LeadingMetaspaceOfTheFirstTokenIsDropped) {
  for (const char* name : {"bpe700-spm-legacy", "bpe700-spm-metaspace"}) {
    auto tokenizer = Load(name);
    ASSERT_TRUE(tokenizer);
    const std::vector<int32_t> ids = *tokenizer->Encode("Hello world", true);  // <s> ▁Hello ▁world
    std::vector<std::string> deltas;
    EXPECT_EQ(StreamAll(*tokenizer, ids, true, &deltas, kAnyPending), "Hello world") << name;
    EXPECT_EQ(deltas[0], "");  // <s>, skipped
    EXPECT_EQ(deltas[1].substr(0, 1), "H") << name;
    EXPECT_EQ(StreamAll(*tokenizer, ids, false, nullptr, kAnyPending), *tokenizer->Decode(ids, false)) << name;
  }
}

TEST(StreamingDecoderTest, InvalidBytesBecomeReplacementCharactersLikeDecode) {
  auto tokenizer = Load("bpe512-gpt2split");
  ASSERT_TRUE(tokenizer);
  const std::string cases[] = {
      "\xF0\x9F",  // truncated at the end: one U+FFFD from Finish
      "\xC3"
      "A",                     // lead byte then ASCII
      "\x80\x80x",             // stray continuations
      "\xE0\x80\x80",          // overlong
      "\xED\xA0\x80\xC3\xA9",  // surrogate then é
      "\xF4\x90\x80\x80",      // above U+10FFFF
  };
  for (const std::string& bytes : cases) {
    const std::vector<int32_t> ids = ByteTokens(*tokenizer, bytes);
    const std::string streamed = StreamAll(*tokenizer, ids, false);
    EXPECT_EQ(streamed, *tokenizer->Decode(ids, false));
    EXPECT_NE(streamed.find(kUtf8Replacement), std::string::npos);
  }
  std::vector<std::string> deltas;
  StreamAll(*tokenizer, ByteTokens(*tokenizer, "\xF0\x9F"), false, &deltas);
  EXPECT_EQ(deltas, (std::vector<std::string>{"", "", std::string(kUtf8Replacement)}));
}

TEST(StreamingDecoderTest, RandomIdSequencesMatchDecode) {
  for (const char* name : {"bpe1000-llama3split", "bpe700-spm-legacy", "bpe700-spm-metaspace", "bpe700-spm-mixed"}) {
    auto tokenizer = Load(name);
    ASSERT_TRUE(tokenizer);
    const size_t max_pending = std::string(name).find("spm") == std::string::npos ? 3 : kAnyPending;
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> any_id(0, tokenizer->vocab_size() - 1);
    std::uniform_int_distribution<int32_t> byte_id(3, 258);  // <0x00>..<0xFF> in the SentencePiece layouts
    for (int trial = 0; trial < 500; ++trial) {
      std::vector<int32_t> ids(rng() % 24);
      for (int32_t& id : ids) id = rng() % 3 == 0 ? byte_id(rng) : any_id(rng);
      for (bool skip : {true, false}) {
        ASSERT_EQ(StreamAll(*tokenizer, ids, skip, nullptr, max_pending), *tokenizer->Decode(ids, skip)) << name;
      }
    }
  }
}

TEST(StreamingDecoderTest, UnknownIdIsAnErrorAndLeavesStateIntact) {
  auto tokenizer = Load("bpe512-gpt2split");
  ASSERT_TRUE(tokenizer);
  StreamingDecoder decoder(tokenizer.get(), false);
  const std::vector<int32_t> ids = ByteTokens(*tokenizer, "\xC3\xA9");
  EXPECT_EQ(*decoder.Feed(ids[0]), "");
  auto bad = decoder.Feed(99999);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*decoder.Feed(ids[1]), "\xC3\xA9");
  EXPECT_EQ(decoder.Finish(), "");
}

}  // namespace
}  // namespace tessera
