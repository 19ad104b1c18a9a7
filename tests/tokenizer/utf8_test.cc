// UTF-8 helpers: lossy conversion must match Rust's from_utf8_lossy (one
// U+FFFD per maximal invalid subpart), which HF's ByteLevel decoder uses.
#include "coordinator/tokenizer/utf8.h"

#include <string>

#include "coordinator/tokenizer/byte_level.h"
#include "gtest/gtest.h"

namespace tessera {
namespace {

std::string Lossy(std::string_view bytes) {
  std::string out;
  Utf8AppendLossy(bytes, &out);
  return out;
}

std::string Fffd(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += kUtf8Replacement;
  return out;
}

TEST(Utf8Test, LossyUsesMaximalSubparts) {
  EXPECT_EQ(Lossy("plain é 数 🙂"), "plain é 数 🙂");
  EXPECT_EQ(Lossy("\xF0\x9F\x99"), Fffd(1));      // truncated 4-byte: one
  EXPECT_EQ(Lossy("\xE0\x80\x80"), Fffd(3));      // overlong: each byte
  EXPECT_EQ(Lossy("\xED\xA0\x80"), Fffd(3));      // surrogate: each byte
  EXPECT_EQ(Lossy("\xF4\x90\x80\x80"), Fffd(4));  // > U+10FFFF
  EXPECT_EQ(Lossy("\xC3"
                  "A"),
            Fffd(1) + "A");
  EXPECT_EQ(Lossy("\xE6\x95"
                  "x\xE6"),
            Fffd(1) + "x" + Fffd(1));
  EXPECT_EQ(Lossy("\xFF\xFE"), Fffd(2));
  EXPECT_EQ(Lossy("\xF0\x9F\x99\x82\xF0\x9F"), "🙂" + Fffd(1));
}

TEST(Utf8Test, StablePrefixHoldsBackOnlyAnIncompleteTail) {
  EXPECT_EQ(Utf8StablePrefixLength(""), 0u);
  EXPECT_EQ(Utf8StablePrefixLength("abc"), 3u);
  EXPECT_EQ(Utf8StablePrefixLength("a\xF0\x9F\x99"), 1u);
  EXPECT_EQ(Utf8StablePrefixLength("a\xF0\x9F\x99\x82"), 5u);
  EXPECT_EQ(Utf8StablePrefixLength("a\xC3"), 1u);
  EXPECT_EQ(Utf8StablePrefixLength("a\xE0\x80"), 3u);  // already invalid: nothing to wait for
  EXPECT_EQ(Utf8StablePrefixLength("a\x80"), 2u);
  EXPECT_EQ(Utf8StablePrefixLength("\xFF"), 1u);
}

TEST(Utf8Test, FirstInvalid) {
  EXPECT_EQ(Utf8FirstInvalid("héllo"), 6u);
  EXPECT_EQ(Utf8FirstInvalid("h\xC3"), 1u);
  EXPECT_EQ(Utf8FirstInvalid("ab\xC0\xAF"), 2u);
}

TEST(ByteLevelTest, MapIsGpt2BytesToUnicode) {
  EXPECT_EQ(ByteLevelCharOf(' '), "Ġ");
  EXPECT_EQ(ByteLevelCharOf('\n'), "Ċ");
  EXPECT_EQ(ByteLevelCharOf('A'), "A");
  EXPECT_EQ(ByteLevelCharOf(0xAD), "Ń");
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(ByteLevelDecodeToken(ByteLevelCharOf(static_cast<uint8_t>(b))), std::string(1, static_cast<char>(b)));
  }
  EXPECT_EQ(ByteLevelDecodeToken("ĠHello"), " Hello");
  EXPECT_EQ(ByteLevelDecodeToken("数"), "数");  // not byte-level characters: kept as is
}

}  // namespace
}  // namespace tessera
