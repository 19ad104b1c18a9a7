// Tables for the GPT-2 byte <-> character map, built once.
#include "coordinator/tokenizer/byte_level.h"

#include <array>

#include "coordinator/tokenizer/utf8.h"

namespace tessera {
namespace {

struct ByteLevelTables {
  std::array<std::string, 256> char_of_byte;
  std::array<int16_t, 512> byte_of_char;  // code points < 512 only; -1 if none

  ByteLevelTables() {
    byte_of_char.fill(-1);
    uint32_t next_extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? b : next_extra++;
      Utf8AppendCodePoint(cp, &char_of_byte[b]);
      byte_of_char[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelTables& Tables() {
  static const ByteLevelTables* tables = new ByteLevelTables();
  return *tables;
}

}  // namespace

std::string_view ByteLevelCharOf(uint8_t byte) { return Tables().char_of_byte[byte]; }

std::optional<uint8_t> ByteLevelByteOf(uint32_t code_point) {
  if (code_point >= 512) return std::nullopt;
  const int16_t b = Tables().byte_of_char[code_point];
  if (b < 0) return std::nullopt;
  return static_cast<uint8_t>(b);
}

void ByteLevelAppendEncoded(std::string_view bytes, std::string* out) {
  const ByteLevelTables& tables = Tables();
  for (char c : bytes) out->append(tables.char_of_byte[static_cast<uint8_t>(c)]);
}

std::string ByteLevelDecodeToken(std::string_view token) {
  std::string bytes;
  size_t pos = 0;
  while (pos < token.size()) {
    const size_t n = Utf8SequenceLength(token, pos);
    if (n == 0) return std::string(token);
    const std::optional<uint8_t> b = ByteLevelByteOf(Utf8DecodeAt(token, pos, n));
    if (!b.has_value()) return std::string(token);
    bytes.push_back(static_cast<char>(*b));
    pos += n;
  }
  return bytes;
}

}  // namespace tessera
