// TextDeltaEvents on its own: deltas carry whole characters even when a
// character's bytes span several tokens (emoji, CJK), the texts join to what
// Tokenizer::Decode gives, a character cut off by the end of generation is
// flushed as one last text-only delta, and special tokens are left out unless
// asked for.
#include "coordinator/text_deltas.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/coordinator/utf8_check.h"

namespace tessera {
namespace {

using ::tessera::testing::IsValidUtf8;

constexpr char kTokenizerPath[] = TESSERA_TEST_DATA_DIR "/tokenizers/bpe512-gpt2split/tokenizer.json";

class RecordingEvents final : public GenerateEvents {
 public:
  bool OnProgress(const PrefillProgress&) override { return true; }
  bool OnTokens(const TokenDelta& tokens) override {
    deltas.push_back(tokens);
    return keep_going;
  }
  std::vector<TokenDelta> deltas;
  bool keep_going = true;
};

std::unique_ptr<Tokenizer> LoadTokenizer() {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromFile(kTokenizerPath);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

TokenDelta Delta(std::initializer_list<int32_t> ids) {
  TokenDelta delta;
  delta.token_ids = ids;
  return delta;
}

TEST(TextDeltaEventsTest, DeltasAreWholeCharactersAndJoinToTheDecodedText) {
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const std::string text = "emoji \xF0\x9F\x99\x82\xF0\x9F\x9A\x80 mixed \xE7\x8A\xB6\xE6\x80\x81\xE7\xA9\xBA\xE9\x97\xB4";
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(text, /*add_special_tokens=*/false);
  ASSERT_TRUE(ids.ok());
  RecordingEvents sink;
  TextDeltaEvents events(tokenizer.get(), /*keep_special_tokens=*/false, sink);
  for (int32_t id : *ids) ASSERT_TRUE(events.OnTokens(Delta({id})));
  ASSERT_TRUE(events.Finish());

  ASSERT_EQ(sink.deltas.size(), ids->size()) << "nothing held back at the end: no extra delta";
  std::string joined;
  int empty_deltas = 0;
  for (const TokenDelta& delta : sink.deltas) {
    EXPECT_TRUE(IsValidUtf8(delta.text)) << delta.text;
    EXPECT_EQ(delta.token_ids.size(), 1u);
    empty_deltas += delta.text.empty() ? 1 : 0;
    joined += delta.text;
  }
  EXPECT_GT(empty_deltas, 0) << "some tokens end inside a character and wait for the next";
  EXPECT_EQ(joined, text);
  EXPECT_EQ(events.text(), text);
}

TEST(TextDeltaEventsTest, ACharacterCutOffAtTheEndIsFlushedAsALastTextOnlyDelta) {
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode("a\xF0\x9F\x99\x82", false);
  ASSERT_TRUE(ids.ok());
  ASSERT_GE(ids->size(), 3u) << "the emoji should take several tokens";
  ids->pop_back();  // generation ends inside the emoji
  RecordingEvents sink;
  TextDeltaEvents events(tokenizer.get(), false, sink);
  for (int32_t id : *ids) ASSERT_TRUE(events.OnTokens(Delta({id})));
  ASSERT_TRUE(events.Finish());
  ASSERT_EQ(sink.deltas.size(), ids->size() + 1);
  const TokenDelta& tail = sink.deltas.back();
  EXPECT_EQ(tail.token_ids.size(), 0u);
  EXPECT_EQ(tail.text, "\xEF\xBF\xBD");  // U+FFFD, like Hugging Face's decode
  absl::StatusOr<std::string> decoded = tokenizer->Decode(*ids, /*skip_special_tokens=*/true);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(events.text(), *decoded);
}

TEST(TextDeltaEventsTest, SpecialTokensAreLeftOutUnlessKept) {
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const int32_t eos = *tokenizer->TokenToId("<|eos|>");
  const int32_t h = (*tokenizer->Encode("Hi", false)).front();
  for (bool keep : {false, true}) {
    RecordingEvents sink;
    TextDeltaEvents events(tokenizer.get(), keep, sink);
    ASSERT_TRUE(events.OnTokens(Delta({h, eos})));
    ASSERT_TRUE(events.Finish());
    EXPECT_EQ(events.text(), keep ? *tokenizer->Decode({h, eos}, false) : *tokenizer->Decode({h}, false));
  }
}

TEST(TextDeltaEventsTest, UnknownIdsAddNoTextAndWithoutATokenizerDeltasPassUnchanged) {
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const int32_t h = (*tokenizer->Encode("H", false)).front();
  RecordingEvents sink;
  TextDeltaEvents events(tokenizer.get(), false, sink);
  ASSERT_TRUE(events.OnTokens(Delta({h, 100000, h})));  // a padded vocabulary's id
  ASSERT_TRUE(events.Finish());
  EXPECT_EQ(events.text(), "HH");
  ASSERT_EQ(sink.deltas.size(), 1u);
  EXPECT_EQ(sink.deltas[0].token_ids.size(), 3u);

  RecordingEvents plain;
  TextDeltaEvents no_text(nullptr, false, plain);
  ASSERT_TRUE(no_text.OnTokens(Delta({h})));
  ASSERT_TRUE(no_text.Finish());
  ASSERT_EQ(plain.deltas.size(), 1u);
  EXPECT_FALSE(plain.deltas[0].logits.has_value());
  EXPECT_TRUE(plain.deltas[0].text.empty());
  EXPECT_TRUE(no_text.text().empty());
}

TEST(TextDeltaEventsTest, AClientGoneIsReported) {
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  RecordingEvents sink;
  sink.keep_going = false;
  TextDeltaEvents events(tokenizer.get(), false, sink);
  EXPECT_FALSE(events.OnTokens(Delta({(*tokenizer->Encode("H", false)).front()})));
}

}  // namespace
}  // namespace tessera
