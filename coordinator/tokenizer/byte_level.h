// GPT-2's reversible byte <-> printable-character map ("bytes_to_unicode").
// Byte-level BPE vocabularies are spelt in these characters: byte 0x20 is
// 'Ġ' (U+0120), byte 0x0A is 'Ċ' (U+010A), printable ASCII maps to itself.
// Encoding maps each input byte to its character; decoding maps back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tessera {

// UTF-8 spelling of the character that stands for `byte`.
std::string_view ByteLevelCharOf(uint8_t byte);

// The byte a byte-level character stands for, or nullopt if `code_point` is
// not one of the 256 characters.
std::optional<uint8_t> ByteLevelByteOf(uint32_t code_point);

// Appends the byte-level spelling of each byte of `bytes` to `out`.
void ByteLevelAppendEncoded(std::string_view bytes, std::string* out);

// Decodes one token string the way the Hugging Face ByteLevel decoder does:
// if every character is a byte-level character, the bytes they stand for;
// otherwise the token's own UTF-8 bytes, unchanged.
std::string ByteLevelDecodeToken(std::string_view token);

}  // namespace tessera
