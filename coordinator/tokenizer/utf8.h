// UTF-8 helpers shared by encoding (input validation) and decoding (lossy
// conversion). Decoding follows Rust's String::from_utf8_lossy, which is what
// the Hugging Face ByteLevel decoder uses: every maximal invalid subpart
// becomes one U+FFFD. Because that rule only looks at the bytes of one
// sequence, converting a byte stream chunk by chunk (cutting only before an
// incomplete trailing sequence) gives exactly the same text as converting it
// whole, which is what StreamingDecoder relies on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tessera {

inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at text[pos], or 0 if the bytes
// there are not one (invalid lead, bad continuation, overlong, surrogate, or
// cut short by the end of text).
size_t Utf8SequenceLength(std::string_view text, size_t pos);

// Byte offset of the first invalid UTF-8 byte, or text.size() if all valid.
size_t Utf8FirstInvalid(std::string_view text);

// Appends `bytes` to `out` with each maximal invalid subpart replaced by
// U+FFFD (Rust from_utf8_lossy semantics). A trailing incomplete sequence
// also becomes one U+FFFD.
void Utf8AppendLossy(std::string_view bytes, std::string* out);

// Length of the longest prefix of `bytes` whose lossy conversion cannot change
// when more bytes are appended: everything except a trailing sequence that is
// incomplete but valid so far.
size_t Utf8StablePrefixLength(std::string_view bytes);

// Appends the UTF-8 encoding of `code_point` (< 0x110000, not a surrogate).
void Utf8AppendCodePoint(uint32_t code_point, std::string* out);

// Decodes the valid sequence of `length` bytes at text[pos].
uint32_t Utf8DecodeAt(std::string_view text, size_t pos, size_t length);

}  // namespace tessera
