// PCRE2 wrapper: Oniguruma's \s and \w, and its find_iter rule for empty
// matches (an empty match right after a match is skipped).
#include "coordinator/tokenizer/pcre2_regex.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tessera {
namespace {

std::vector<std::pair<size_t, size_t>> Matches(std::string_view pattern, std::string_view subject) {
  auto regex = Pcre2Regex::Compile(pattern, /*literal=*/false);
  EXPECT_TRUE(regex.ok()) << regex.status();
  std::vector<RegexMatch> matches;
  EXPECT_TRUE((*regex)->FindAll(subject, &matches).ok());
  std::vector<std::pair<size_t, size_t>> out;
  for (const RegexMatch& m : matches) out.emplace_back(m.begin, m.end);
  return out;
}

using Spans = std::vector<std::pair<size_t, size_t>>;

TEST(Pcre2RegexTest, EmptyMatchesFollowOnigurumaIteration) {
  EXPECT_EQ(Matches("x*", "axxb"), (Spans{{0, 0}, {1, 3}, {4, 4}}));
  EXPECT_EQ(Matches("x*", ""), (Spans{{0, 0}}));
  EXPECT_EQ(Matches("", "é"), (Spans{{0, 0}, {2, 2}}));  // steps over whole characters
}

TEST(Pcre2RegexTest, WhiteSpaceIsUnicodeWhiteSpace) {
  EXPECT_EQ(Matches("\\s", "\xC2\x85"), (Spans{{0, 2}}));  // U+0085 is space
  EXPECT_EQ(Matches("\\s", "\xE1\xA0\x8E"), (Spans{}));    // U+180E is not
  EXPECT_EQ(Matches("[^\\s\\p{L}]+", "\xE1\xA0\x8E"), (Spans{{0, 3}}));
  EXPECT_EQ(Matches("\\S+",
                    "a\xE1\xA0\x8E"
                    "b c"),
            (Spans{{0, 5}, {6, 7}}));
}

TEST(Pcre2RegexTest, RewriteKeepsEscapesAndClassesApart) {
  EXPECT_EQ(RewriteToOnigurumaClasses("\\\\s"), "\\\\s");  // an escaped backslash, then 's'
  EXPECT_EQ(RewriteToOnigurumaClasses("\\Q\\s\\E"), "\\Q\\s\\E");
  EXPECT_EQ(RewriteToOnigurumaClasses("[\\S]"), "[\\S]");
  EXPECT_NE(RewriteToOnigurumaClasses("[^\\s]"), "[^\\s]");
  EXPECT_EQ(RewriteToOnigurumaClasses("[]\\d]"), "[]\\d]");
}

TEST(Pcre2RegexTest, LiteralPatternsAreNotRegexes) {
  auto regex = Pcre2Regex::Compile("a.b(", /*literal=*/true);
  ASSERT_TRUE(regex.ok());
  std::vector<RegexMatch> matches;
  ASSERT_TRUE((*regex)->FindAll("axb( a.b(", &matches).ok());
  ASSERT_EQ(matches.size(), 1u);
  EXPECT_EQ(matches[0].begin, 5u);
}

TEST(Pcre2RegexTest, InvalidPatternIsAnError) {
  auto regex = Pcre2Regex::Compile("(?<", false);
  ASSERT_FALSE(regex.ok());
  EXPECT_EQ(regex.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera
