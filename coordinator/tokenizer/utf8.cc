// UTF-8 validation and lossy conversion with the WHATWG / Rust "maximal
// subpart" rule (see utf8.h for why that rule matters).
#include "coordinator/tokenizer/utf8.h"

namespace tessera {
namespace {

// How many bytes of a sequence starting with `lead` are valid, considering
// the bytes available; sets *complete when the whole sequence is present.
// Returns the length of the maximal valid prefix (>= 1 only if lead is valid).
size_t Utf8ValidPrefix(std::string_view text, size_t pos, bool* complete) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(pos);
  *complete = false;
  if (lead < 0x80) {
    *complete = true;
    return 1;
  }
  size_t need = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2;
  } else if (lead == 0xE0) {
    need = 3, lo = 0xA0;
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    need = 3;
  } else if (lead == 0xED) {
    need = 3, hi = 0x9F;
  } else if (lead == 0xF0) {
    need = 4, lo = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    need = 4;
  } else if (lead == 0xF4) {
    need = 4, hi = 0x8F;
  } else {
    return 0;  // 0x80..0xC1, 0xF5..0xFF never start a sequence
  }
  size_t have = 1;
  while (have < need) {
    if (pos + have >= text.size()) return have;  // cut short: valid so far
    const uint8_t b = byte(pos + have);
    const uint8_t min = have == 1 ? lo : 0x80;
    const uint8_t max = have == 1 ? hi : 0xBF;
    if (b < min || b > max) return have;
    ++have;
  }
  *complete = true;
  return need;
}

}  // namespace

size_t Utf8SequenceLength(std::string_view text, size_t pos) {
  bool complete = false;
  const size_t n = Utf8ValidPrefix(text, pos, &complete);
  return complete ? n : 0;
}

size_t Utf8FirstInvalid(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t n = Utf8SequenceLength(text, pos);
    if (n == 0) return pos;
    pos += n;
  }
  return text.size();
}

void Utf8AppendLossy(std::string_view bytes, std::string* out) {
  size_t pos = 0;
  size_t run_start = 0;  // start of the pending run of valid bytes
  while (pos < bytes.size()) {
    if (static_cast<uint8_t>(bytes[pos]) < 0x80) {
      ++pos;
      continue;
    }
    bool complete = false;
    const size_t n = Utf8ValidPrefix(bytes, pos, &complete);
    if (complete) {
      pos += n;
      continue;
    }
    out->append(bytes.substr(run_start, pos - run_start));
    out->append(kUtf8Replacement);
    pos += n == 0 ? 1 : n;  // skip the maximal invalid subpart
    run_start = pos;
  }
  out->append(bytes.substr(run_start));
}

size_t Utf8StablePrefixLength(std::string_view bytes) {
  // A sequence is at most 4 bytes, so only the last 3 bytes can start an
  // incomplete one; scan back to the last lead byte among them.
  const size_t size = bytes.size();
  for (size_t back = 1; back <= 3 && back <= size; ++back) {
    const size_t pos = size - back;
    const uint8_t b = static_cast<uint8_t>(bytes[pos]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    bool complete = false;
    const size_t n = Utf8ValidPrefix(bytes, pos, &complete);
    // Incomplete-but-valid-so-far iff the valid prefix reaches the end.
    if (!complete && n > 0 && pos + n == size) return pos;
    return size;
  }
  return size;
}

void Utf8AppendCodePoint(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t Utf8DecodeAt(std::string_view text, size_t pos, size_t length) {
  const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(text[pos + i])); };
  switch (length) {
    case 1:
      return byte(0);
    case 2:
      return ((byte(0) & 0x1F) << 6) | (byte(1) & 0x3F);
    case 3:
      return ((byte(0) & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
    default:
      return ((byte(0) & 0x07) << 18) | ((byte(1) & 0x3F) << 12) | ((byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
  }
}

}  // namespace tessera
