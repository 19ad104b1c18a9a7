// Decoder chains as streams: what each step holds back and when it lets go
// (the component goldens check the decoded text against tokenizers), and the
// orders Decoder::Create refuses.
#include "coordinator/tokenizer/decoder.h"

#include <string>
#include <vector>

#include "coordinator/tokenizer/utf8.h"
#include "gtest/gtest.h"

namespace tessera {
namespace {

const std::string kMeta = "\xE2\x96\x81";  // ▁

DecoderStep Step(DecoderStep::Kind kind, std::string content = "", size_t start = 0, size_t stop = 0) {
  DecoderStep step;
  step.kind = kind;
  step.content = std::move(content);
  step.start = start;
  step.stop = stop;
  return step;
}

DecoderStep Replace(std::string pattern, std::string content, bool literal = true) {
  DecoderStep step = Step(DecoderStep::Kind::kReplace, std::move(content));
  step.pattern = std::move(pattern);
  step.pattern_is_literal = literal;
  return step;
}

std::unique_ptr<Decoder> Make(std::vector<DecoderStep> steps) {
  for (size_t i = 0; i < steps.size(); ++i) steps[i].path = "decoder.decoders[" + std::to_string(i) + "]";
  auto decoder = Decoder::Create(steps);
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  return decoder.ok() ? *std::move(decoder) : nullptr;
}

// One delta per token, then Finish's.
std::vector<std::string> Deltas(const Decoder& decoder, const std::vector<std::string>& tokens) {
  DecoderStream stream(&decoder);
  std::vector<std::string> deltas;
  for (const std::string& token : tokens) {
    std::string delta;
    stream.Push(token, &delta);
    EXPECT_EQ(Utf8FirstInvalid(delta), delta.size());
    deltas.push_back(delta);
  }
  std::string rest;
  stream.Finish(&rest);
  deltas.push_back(rest);
  return deltas;
}

// Llama-2 / Mistral: Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0).
std::unique_ptr<Decoder> Legacy() {
  return Make({Replace(kMeta, " "), Step(DecoderStep::Kind::kByteFallback), Step(DecoderStep::Kind::kFuse),
               Step(DecoderStep::Kind::kStrip, " ", 1, 0)});
}

TEST(TokenizerDecoderTest, ByteFallbackRunWaitsForTheTokenThatEndsIt) {
  auto decoder = Legacy();
  ASSERT_TRUE(decoder);
  // 数 is three byte tokens: nothing until a non-byte token ends the run.
  EXPECT_EQ(Deltas(*decoder, {kMeta + "a", "<0xE6>", "<0x95>", "<0xB0>", kMeta + "b"}),
            (std::vector<std::string>{"a", "", "", "", "\xE6\x95\xB0 b", ""}));
  EXPECT_EQ(Deltas(*decoder, {"<0xE6>", "<0x95>", "<0xB0>"}),
            (std::vector<std::string>{"", "", "", "\xE6\x95\xB0"}));
  // A run that is not UTF-8 as a whole is one U+FFFD per byte, even when it
  // starts with a complete character.
  EXPECT_EQ(decoder->Decode({"<0xE6>", "<0x95>", "<0xB0>", "<0xFF>", "x"}),
            std::string(kUtf8Replacement) + std::string(kUtf8Replacement) + std::string(kUtf8Replacement) +
                std::string(kUtf8Replacement) + "x");
  EXPECT_EQ(decoder->Decode({"<0xe9>", "<0x+F>", "<0x4G>"}),
            std::string(kUtf8Replacement) + std::string(kUtf8Replacement) + "<0x4G>");
}

TEST(TokenizerDecoderTest, PendingBytesCountsTheHeldRun) {
  auto decoder = Legacy();
  ASSERT_TRUE(decoder);
  DecoderStream stream(decoder.get());
  std::string text;
  for (const char* token : {"<0xF0>", "<0x9F>", "<0x99>"}) stream.Push(token, &text);
  EXPECT_EQ(stream.pending_bytes(), 3u);
  stream.Push("<0x82>", &text);
  EXPECT_EQ(stream.pending_bytes(), 4u);
  stream.Finish(&text);
  EXPECT_EQ(text, "\xF0\x9F\x99\x82");
  EXPECT_EQ(stream.pending_bytes(), 0u);
}

TEST(TokenizerDecoderTest, MetaspaceDropsTheFirstTokensReplacementsUnlessNever) {
  DecoderStep first = Step(DecoderStep::Kind::kMetaspace, kMeta);
  auto decoder = Make({first});
  ASSERT_TRUE(decoder);
  EXPECT_EQ(Deltas(*decoder, {kMeta + kMeta + "Hi" + kMeta, kMeta + "you"}),
            (std::vector<std::string>{"Hi", " you", ""}));
  first.prepend_never = true;
  auto never = Make({first});
  ASSERT_TRUE(never);
  EXPECT_EQ(never->Decode({kMeta + "Hi", kMeta + "you"}), " Hi you");
  // After Fuse there is one token, the first: every replacement goes.
  auto fused = Make({Step(DecoderStep::Kind::kFuse), Step(DecoderStep::Kind::kMetaspace, kMeta)});
  ASSERT_TRUE(fused);
  EXPECT_EQ(fused->Decode({kMeta + "Hi", kMeta + "you"}), "Hiyou");
}

TEST(TokenizerDecoderTest, StripPerTokenBeforeFuseAndOnTheWholeTextAfter) {
  auto per_token = Make({Step(DecoderStep::Kind::kStrip, " ", 1, 1)});
  ASSERT_TRUE(per_token);
  EXPECT_EQ(per_token->Decode({" a ", "  b  ", " "}), "a b ");
  auto whole = Make({Step(DecoderStep::Kind::kFuse), Step(DecoderStep::Kind::kStrip, " ", 1, 2)});
  ASSERT_TRUE(whole);
  // Trailing spaces wait (at most `stop` of them): they are stripped if
  // nothing follows them.
  EXPECT_EQ(Deltas(*whole, {"  a ", " ", "b   "}), (std::vector<std::string>{" a", "", "  b ", ""}));
}

TEST(TokenizerDecoderTest, ReplaceRegexPerTokenWithEmptyMatches) {
  auto decoder = Make({Replace("x*", "-", /*literal=*/false)});
  ASSERT_TRUE(decoder);
  EXPECT_EQ(decoder->Decode({"ab", "", "xx"}), "-a-b--");
}

TEST(TokenizerDecoderTest, RefusesOrdersThatCannotStream) {
  const auto refused = [](std::vector<DecoderStep> steps, const std::string& message) {
    for (size_t i = 0; i < steps.size(); ++i) steps[i].path = "decoder.decoders[" + std::to_string(i) + "]";
    auto decoder = Decoder::Create(steps);
    ASSERT_FALSE(decoder.ok()) << message;
    EXPECT_EQ(decoder.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(decoder.status().message().find(message), std::string::npos) << decoder.status();
  };
  refused({Step(DecoderStep::Kind::kByteFallback), Step(DecoderStep::Kind::kByteLevel)},
          "decoder.decoders[1].type 'ByteLevel' is only supported as the whole decoder");
  refused({Step(DecoderStep::Kind::kFuse), Replace(kMeta, " ")},
          "decoder.decoders[1].type 'Replace' after 'Fuse' is not supported");
  refused({Step(DecoderStep::Kind::kFuse), Step(DecoderStep::Kind::kByteFallback)},
          "decoder.decoders[1].type 'ByteFallback' after 'Fuse' is not supported");
  refused({Step(DecoderStep::Kind::kStrip, "ab", 1, 0)}, "decoder.decoders[0].content must be one character");
  refused({Step(DecoderStep::Kind::kMetaspace, "")}, "decoder.decoders[0].replacement must be one character");
  refused({Replace("(", " ", /*literal=*/false)}, "decoder.decoders[0].pattern: invalid regex");
}

}  // namespace
}  // namespace tessera
