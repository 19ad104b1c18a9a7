// TextDeltaEvents on its own: deltas carry whole characters even when a
// character's bytes span several tokens (emoji, CJK), the texts join to what
// Tokenizer::Decode gives, a character cut off by the end of generation is
// flushed as one last text-only delta, and special tokens are left out unless
// asked for; and stop strings (below).
#include "coordinator/text_deltas.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/tokenizer/streaming_decoder.h"
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
  TextDeltaEvents events(tokenizer.get(), /*keep_special_tokens=*/false, StoppingCriteria(), sink);
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
  TextDeltaEvents events(tokenizer.get(), false, StoppingCriteria(), sink);
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
    TextDeltaEvents events(tokenizer.get(), keep, StoppingCriteria(), sink);
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
  TextDeltaEvents events(tokenizer.get(), false, StoppingCriteria(), sink);
  ASSERT_TRUE(events.OnTokens(Delta({h, 100000, h})));  // a padded vocabulary's id
  ASSERT_TRUE(events.Finish());
  EXPECT_EQ(events.text(), "HH");
  ASSERT_EQ(sink.deltas.size(), 1u);
  EXPECT_EQ(sink.deltas[0].token_ids.size(), 3u);

  RecordingEvents plain;
  TextDeltaEvents no_text(nullptr, false, StoppingCriteria(), plain);
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
  TextDeltaEvents events(tokenizer.get(), false, StoppingCriteria(), sink);
  EXPECT_FALSE(events.OnTokens(Delta({(*tokenizer->Encode("H", false)).front()})));
}


// Stop strings (bpe512-gpt2split is byte-level: emoji and CJK characters
// take several tokens): for stop strings that span tokens and split
// characters, the deltas stop at exactly the token that completes the
// earliest match, the text ends before it, every delta is whole UTF-8
// characters, and at every step the text held back is exactly the longest
// tail that could still begin a stop string.
const std::string kText =
    "emoji \xF0\x9F\x99\x82\xF0\x9F\x9A\x80 mixed \xE7\x8A\xB6\xE6\x80\x81\xE7\xA9\xBA\xE9\x97\xB4 and the end";

// The longest tail of `text` that is a proper prefix of a stop string.
size_t HoldableTail(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const std::string& stop : stops) {
    for (size_t n = 1; n < stop.size() && n <= text.size(); ++n) {
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) best = std::max(best, n);
    }
  }
  return best;
}

struct Case {
  std::vector<std::string> stops;
  std::string expected_text;  // what the client gets
};

TEST(StopStringsTest, StopsAtTheCompletingTokenAcrossTokenAndCharacterBoundaries) {
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const std::vector<int32_t> ids = *tokenizer->Encode(kText, /*add_special_tokens=*/false);
  const std::vector<Case> cases = {
      {{"\xF0\x9F\x9A\x80 mi"}, "emoji \xF0\x9F\x99\x82"},                        // starts inside a multi-token emoji
      {{"\xE6\x80\x81\xE7\xA9\xBA"}, "emoji \xF0\x9F\x99\x82\xF0\x9F\x9A\x80 mixed \xE7\x8A\xB6"},  // CJK
      {{"the end", "mixed"}, "emoji \xF0\x9F\x99\x82\xF0\x9F\x9A\x80 "},         // the earliest of two
      {{"ji \xF0\x9F\x99\x82", "zzz"}, "emo"},
      {{"not there", "endless"}, kText},                                          // never matches: all released
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.stops.front());
    StoppingCriteria stopping;
    stopping.stop_strings = c.stops;
    RecordingEvents sink;
    TextDeltaEvents events(tokenizer.get(), false, stopping, sink);
    StreamingDecoder oracle(tokenizer.get(), /*skip_special_tokens=*/true);
    std::string decoded;  // what the decoder has released so far: whole characters
    std::string relayed;
    size_t fed = 0;
    for (int32_t id : ids) {
      decoded += *oracle.Feed(id);
      ++fed;
      ASSERT_TRUE(events.OnTokens(TokenDelta{{id}, std::nullopt, "", {}}));
      const TokenDelta& delta = sink.deltas.back();
      EXPECT_TRUE(IsValidUtf8(delta.text)) << delta.text;
      relayed += delta.text;
      if (events.stopped()) break;
      // Held back: exactly the tail that could still begin a stop string.
      EXPECT_EQ(relayed, decoded.substr(0, decoded.size() - HoldableTail(decoded, c.stops))) << "after token " << fed;
    }
    const size_t before_finish = sink.deltas.size();
    ASSERT_TRUE(events.Finish());
    for (size_t i = before_finish; i < sink.deltas.size(); ++i) relayed += sink.deltas[i].text;  // the held tail
    EXPECT_EQ(events.text(), c.expected_text);
    EXPECT_EQ(relayed, c.expected_text);
    const bool matches = c.expected_text != kText;
    EXPECT_EQ(events.stopped(), matches);
    if (!matches) continue;
    // The completing token: the text through it has a match, the text before it none.
    const std::string through = *tokenizer->Decode(std::vector<int32_t>(ids.begin(), ids.begin() + fed), true);
    const std::string before = *tokenizer->Decode(std::vector<int32_t>(ids.begin(), ids.begin() + fed - 1), true);
    bool through_matches = false;
    for (const std::string& stop : c.stops) {
      through_matches |= through.find(stop) != std::string::npos;
      EXPECT_EQ(before.find(stop), std::string::npos) << "stopped late";
    }
    EXPECT_TRUE(through_matches) << "stopped early";
    EXPECT_EQ(sink.deltas.size(), fed) << "one delta per token, no tail after a match";
    EXPECT_TRUE(events.OnTokens(TokenDelta{{ids.back()}, std::nullopt, "", {}}));
    EXPECT_EQ(sink.deltas.size(), fed) << "nothing is relayed after the match";
  }
}

TEST(StopStringsTest, AMatchInsideADeltaOfSeveralTokensDropsTheTokensAfterIt) {
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const std::vector<int32_t> ids = *tokenizer->Encode("abc stop here xyz", false);
  StoppingCriteria stopping;
  stopping.stop_strings = {" stop"};
  RecordingEvents sink;
  TextDeltaEvents events(tokenizer.get(), false, stopping, sink);
  TokenDelta delta;
  delta.token_ids = ids;
  for (int32_t id : ids) delta.logprobs.push_back(TokenLogprobs{id, -1.0f, {}});
  ASSERT_TRUE(events.OnTokens(delta));
  ASSERT_TRUE(events.stopped());
  ASSERT_EQ(sink.deltas.size(), 1u);
  const TokenDelta& got = sink.deltas[0];
  EXPECT_EQ(got.text, "abc");
  ASSERT_LT(got.token_ids.size(), ids.size());
  EXPECT_EQ(got.logprobs.size(), got.token_ids.size());
  const std::string through = *tokenizer->Decode(got.token_ids, true);
  EXPECT_NE(through.find(" stop"), std::string::npos);
  std::vector<int32_t> one_less(got.token_ids.begin(), got.token_ids.end() - 1);
  EXPECT_EQ(tokenizer->Decode(one_less, true)->find(" stop"), std::string::npos);
}

// Stop strings are searched in the text released from the min_tokens-th
// token on; before it, text passes unexamined (and unheld).
TEST(StopStringsTest, NothingStopsBeforeMinTokens) {
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const std::vector<int32_t> ids = *tokenizer->Encode("ab ab ab", false);
  ASSERT_GE(ids.size(), 3u);
  for (const int32_t min_tokens : {0, static_cast<int32_t>(ids.size())}) {
    SCOPED_TRACE(min_tokens);
    StoppingCriteria stopping;
    stopping.stop_strings = {"ab"};
    stopping.min_tokens = min_tokens;
    RecordingEvents sink;
    TextDeltaEvents events(tokenizer.get(), false, stopping, sink);
    StreamingDecoder oracle(tokenizer.get(), true);
    std::string decoded;
    std::string last_piece;
    for (size_t i = 0; i < ids.size() && !events.stopped(); ++i) {
      last_piece = *oracle.Feed(ids[i]);
      decoded += last_piece;
      ASSERT_TRUE(events.OnTokens(TokenDelta{{ids[i]}, std::nullopt, "", {}}));
      if (min_tokens > 0 && i + 1 < ids.size()) EXPECT_FALSE(events.stopped()) << "token " << i;
    }
    ASSERT_TRUE(events.Finish());
    if (min_tokens == 0) {
      EXPECT_TRUE(events.stopped());
      EXPECT_EQ(events.text(), "");
    } else if (last_piece.find("ab") != std::string::npos) {
      EXPECT_TRUE(events.stopped());
      EXPECT_EQ(events.text(), decoded.substr(0, decoded.rfind("ab")));
    } else {
      EXPECT_FALSE(events.stopped()) << "the match began before min_tokens";
      EXPECT_EQ(events.text(), "ab ab ab");
    }
  }
}

TEST(StopStringsTest, WithoutStopStringsNothingIsHeldBack) {
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  RecordingEvents sink;
  TextDeltaEvents events(tokenizer.get(), false, StoppingCriteria(), sink);
  const std::vector<int32_t> ids = *tokenizer->Encode("plain words", false);
  for (int32_t id : ids) ASSERT_TRUE(events.OnTokens(TokenDelta{{id}, std::nullopt, "", {}}));
  EXPECT_EQ(events.text(), "plain words");
  EXPECT_FALSE(events.stopped());
}

}  // namespace
}  // namespace tessera
