// Normalizer steps beyond the component goldens: how `lead` (which bytes
// still stand for the input's first character, for Metaspace's
// prepend_scheme "first") moves through each step, and refusals.
#include "coordinator/tokenizer/normalizer.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tessera {
namespace {

NormalizerStep Unicode(UnicodeForm form) {
  NormalizerStep step;
  step.kind = NormalizerStep::Kind::kUnicode;
  step.form = form;
  return step;
}

NormalizerStep Replace(std::string pattern, bool literal, std::string content) {
  NormalizerStep step;
  step.kind = NormalizerStep::Kind::kReplace;
  step.pattern = std::move(pattern);
  step.pattern_is_literal = literal;
  step.content = std::move(content);
  step.path = "normalizer";
  return step;
}

NormalizerStep Prepend(std::string prefix) {
  NormalizerStep step;
  step.kind = NormalizerStep::Kind::kPrepend;
  step.content = std::move(prefix);
  return step;
}

NormalizerStep Strip(bool left, bool right) {
  NormalizerStep step;
  step.kind = NormalizerStep::Kind::kStrip;
  step.strip_left = left;
  step.strip_right = right;
  return step;
}

NormalizerStep Lowercase() {
  NormalizerStep step;
  step.kind = NormalizerStep::Kind::kLowercase;
  return step;
}

struct Result {
  std::string text;
  size_t lead;
};

Result Normalized(const std::vector<NormalizerStep>& steps, std::string text, size_t lead) {
  auto normalizer = Normalizer::Create(steps);
  EXPECT_TRUE(normalizer.ok()) << normalizer.status();
  EXPECT_TRUE((*normalizer)->Normalize(&text, &lead).ok());
  return {text, lead};
}

TEST(TokenizerNormalizerTest, UnicodeFormsComposeDecomposeAndFoldCompatibility) {
  EXPECT_EQ(Normalized({Unicode(UnicodeForm::kNfc)}, "e\xCC\x81", 1).text, "\xC3\xA9");       // e + U+0301 -> é
  EXPECT_EQ(Normalized({Unicode(UnicodeForm::kNfd)}, "\xC3\xA9", 2).text, "e\xCC\x81");       // é -> e + U+0301
  EXPECT_EQ(Normalized({Unicode(UnicodeForm::kNfc)}, "\xE1\x84\x80\xE1\x85\xA1", 3).text,     // jamo G + A
            "\xEA\xB0\x80");                                                             // -> 가
  EXPECT_EQ(Normalized({Unicode(UnicodeForm::kNfc)}, "\xEF\xBC\xA1", 3).text, "\xEF\xBC\xA1");  // full-width A stays
  EXPECT_EQ(Normalized({Unicode(UnicodeForm::kNfkc)}, "\xEF\xBC\xA1\xEF\xAC\x81", 3).text, "Afi");  // Ａ ﬁ
  EXPECT_EQ(Normalized({Unicode(UnicodeForm::kNfkd)}, "\xE2\x84\xAB", 3).text, "A\xCC\x8A");        // Å sign
  EXPECT_EQ(Normalized({Unicode(UnicodeForm::kNfc)}, std::string("a\0b", 3), 1).text, std::string("a\0b", 3));
}

TEST(TokenizerNormalizerTest, LowercaseIsPerCharacterWithTheDottedCapitalI) {
  EXPECT_EQ(Normalized({Lowercase()}, "\xC4\xB0x", 2).text, "i\xCC\x87x");   // İ -> i + U+0307
  EXPECT_EQ(Normalized({Lowercase()}, "\xC4\xB0x", 2).lead, 3u);
  EXPECT_EQ(Normalized({Lowercase()}, "\xCE\xA3\xCE\xA3", 2).text, "\xCF\x83\xCF\x83");  // no final sigma
}

TEST(TokenizerNormalizerTest, StripUsesUnicodeWhiteSpaceAndMovesTheLead) {
  EXPECT_EQ(Normalized({Strip(true, true)}, "\xE3\x80\x80 a\t\n", 3).text, "a");
  EXPECT_EQ(Normalized({Strip(true, true)}, "\xE3\x80\x80 a", 3).lead, 0u);  // the first character is gone
  EXPECT_EQ(Normalized({Strip(false, true)}, " a ", 1).text, " a");
  EXPECT_EQ(Normalized({Strip(false, true)}, " a ", 1).lead, 1u);
  EXPECT_EQ(Normalized({Strip(true, false)}, "\xE2\x80\x8B", 3).text, "\xE2\x80\x8B");  // U+200B is not White_Space
}

TEST(TokenizerNormalizerTest, PrependOnlyNonEmptyTextAndKeepsTheLead) {
  EXPECT_EQ(Normalized({Prepend("\xE2\x96\x81")}, "", 0).text, "");
  const Result r = Normalized({Prepend("\xE2\x96\x81")}, "ab", 1);
  EXPECT_EQ(r.text, "\xE2\x96\x81" "ab");
  EXPECT_EQ(r.lead, 4u);
  EXPECT_EQ(Normalized({Prepend("\xE2\x96\x81")}, "ab", 0).lead, 0u);  // a piece that starts later
}

TEST(TokenizerNormalizerTest, ReplaceContentTakesTheAlignmentOfTheMatchsLastByte) {
  // One replaced character keeps offset 0; a longer match does not.
  const Result one = Normalized({Replace(" ", true, "\xE2\x96\x81")}, " a b", 1);
  EXPECT_EQ(one.text, "\xE2\x96\x81" "a\xE2\x96\x81" "b");
  EXPECT_EQ(one.lead, 3u);
  const Result two = Normalized({Replace(" {2,}", false, " ")}, "  a", 1);
  EXPECT_EQ(two.text, " a");
  EXPECT_EQ(two.lead, 0u);
  // Empty matches insert the content; the first one stands for offset 0.
  const Result empty = Normalized({Replace("", true, "-")}, "ab", 1);
  EXPECT_EQ(empty.text, "-a-b-");
  EXPECT_EQ(empty.lead, 3u);
  EXPECT_EQ(Normalized({Replace("a", true, "")}, "aab", 1).text, "b");
  EXPECT_EQ(Normalized({Replace("a", true, "")}, "aab", 1).lead, 0u);
  EXPECT_EQ(Normalized({Replace("x", true, "y")}, "", 0).text, "");
}

TEST(TokenizerNormalizerTest, LegacySentencePieceSequence) {
  // Llama-2 / Mistral: Prepend("▁") then Replace(" ", "▁").
  const Result r = Normalized({Prepend("\xE2\x96\x81"), Replace(" ", true, "\xE2\x96\x81")}, " Hi  you", 1);
  EXPECT_EQ(r.text, "\xE2\x96\x81\xE2\x96\x81Hi\xE2\x96\x81\xE2\x96\x81you");
  EXPECT_EQ(r.lead, 6u);
}

TEST(TokenizerNormalizerTest, RefusesAnInvalidReplacePatternNamingItsPath) {
  NormalizerStep step = Replace("(unclosed", false, "x");
  step.path = "normalizer.normalizers[1]";
  auto normalizer = Normalizer::Create({step});
  ASSERT_FALSE(normalizer.ok());
  EXPECT_EQ(normalizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(normalizer.status().message().find("normalizer.normalizers[1].pattern: invalid regex '(unclosed'"),
            std::string::npos)
      << normalizer.status();
}

}  // namespace
}  // namespace tessera
