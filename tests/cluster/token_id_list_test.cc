// ParseTokenIdList: every form a person or a script would write, and the
// near misses that must be errors rather than a different prompt.
#include "tools/cluster/token_id_list.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<int32_t> ParseOk(absl::string_view text) {
  absl::StatusOr<std::vector<int32_t>> ids = ParseTokenIdList(text);
  EXPECT_TRUE(ids.ok()) << "'" << text << "': " << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

std::string ParseError(absl::string_view text) {
  absl::StatusOr<std::vector<int32_t>> ids = ParseTokenIdList(text);
  EXPECT_FALSE(ids.ok()) << "'" << text << "' parsed";
  if (ids.ok()) return "";
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(ids.status().message());
}

TEST(TokenIdListTest, AcceptsCommasWhitespaceAndJsonArrays) {
  EXPECT_THAT(ParseOk("1,2,3"), ElementsAre(1, 2, 3));
  EXPECT_THAT(ParseOk("1 2 3"), ElementsAre(1, 2, 3));
  EXPECT_THAT(ParseOk("1, 2 ,3"), ElementsAre(1, 2, 3));
  EXPECT_THAT(ParseOk("1\n2\r\n\t3\n"), ElementsAre(1, 2, 3));
  EXPECT_THAT(ParseOk("[1,2,3]"), ElementsAre(1, 2, 3));
  EXPECT_THAT(ParseOk("  [ 1 ,\n 2, 3 ]\n"), ElementsAre(1, 2, 3));
  EXPECT_THAT(ParseOk("[151643]"), ElementsAre(151643));
  EXPECT_THAT(ParseOk("0 2147483647"), ElementsAre(0, 2147483647));
}

TEST(TokenIdListTest, EmptyInputsGiveEmptyLists) {
  EXPECT_THAT(ParseOk(""), IsEmpty());
  EXPECT_THAT(ParseOk(" \n "), IsEmpty());
  EXPECT_THAT(ParseOk("[]"), IsEmpty());
  EXPECT_THAT(ParseOk("[ ]\n"), IsEmpty());
}

TEST(TokenIdListTest, RejectsNearMissesSayingWhere) {
  EXPECT_THAT(ParseError("1,,2"), HasSubstr("at offset 2: expected a token id, found ',2'"));
  EXPECT_THAT(ParseError("1,2,"), HasSubstr("expected a token id after ','"));
  EXPECT_THAT(ParseError(",1"), HasSubstr("at offset 0"));
  EXPECT_THAT(ParseError("1;2"), HasSubstr("at offset 1"));
  EXPECT_THAT(ParseError("1x"), HasSubstr("',' or whitespace after a token id"));
  EXPECT_THAT(ParseError("1.5"), HasSubstr("at offset 1"));
  EXPECT_THAT(ParseError("1e3"), HasSubstr("at offset 1"));
  EXPECT_THAT(ParseError("-1"), HasSubstr("ids are >= 0"));
  EXPECT_THAT(ParseError("+1"), HasSubstr("at offset 0"));
  EXPECT_THAT(ParseError("2147483648"), HasSubstr("out of range"));
  EXPECT_THAT(ParseError("99999999999999999999999"), HasSubstr("out of range"));
  EXPECT_THAT(ParseError("[1,2"), HasSubstr("expected ']'"));
  EXPECT_THAT(ParseError("[1,2]]"), HasSubstr("nothing after ']'"));
  EXPECT_THAT(ParseError("[1,2] 3"), HasSubstr("nothing after ']'"));
  EXPECT_THAT(ParseError("1,2]"), HasSubstr("at offset 3"));
  EXPECT_THAT(ParseError("[\"1\"]"), HasSubstr("at offset 1"));
  EXPECT_THAT(ParseError("1 2 \x01"), HasSubstr("\\001"));
}

}  // namespace
}  // namespace tessera
