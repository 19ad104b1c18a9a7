// utf8proc wrappers (see unicode.h).
#include "coordinator/tokenizer/unicode.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "coordinator/tokenizer/utf8.h"
#include "utf8proc.h"

namespace tessera {

absl::Status UnicodeAppendNormalized(UnicodeForm form, std::string_view text, std::string* out) {
  if (text.empty()) return absl::OkStatus();
  int options = UTF8PROC_STABLE;
  switch (form) {
    case UnicodeForm::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case UnicodeForm::kNfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case UnicodeForm::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case UnicodeForm::kNfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* result = nullptr;
  // With an explicit length (no UTF8PROC_NULLTERM) a NUL byte is an ordinary character.
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &result, static_cast<utf8proc_option_t>(options));
  if (n < 0) {
    return absl::InvalidArgumentError(absl::StrCat("Unicode normalization failed: ", utf8proc_errmsg(n)));
  }
  out->append(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return absl::OkStatus();
}

void UnicodeAppendLowercase(std::string_view text, std::string* out) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t n = Utf8SequenceLength(text, pos);
    if (n == 0) n = 1;  // unreachable for validated text
    const uint32_t cp = Utf8DecodeAt(text, pos, n);
    pos += n;
    if (cp == 0x130) {  // SpecialCasing: LATIN CAPITAL LETTER I WITH DOT ABOVE
      out->append("i\xCC\x87");
      continue;
    }
    Utf8AppendCodePoint(static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), out);
  }
}

bool UnicodeIsWhiteSpace(uint32_t cp) {
  if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return true;  // White_Space controls
  const utf8proc_category_t category = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return category == UTF8PROC_CATEGORY_ZS || category == UTF8PROC_CATEGORY_ZL || category == UTF8PROC_CATEGORY_ZP;
}

bool UnicodeIsStarter(uint32_t cp) {
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class == 0;
}

}  // namespace tessera
