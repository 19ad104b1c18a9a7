// The one place that talks to utf8proc: Unicode normal forms, lowercase and
// character properties, from Debian's libutf8proc (no hand-written tables).
// Each function matches what Hugging Face tokenizers does with the same name
// in Rust (unicode-normalization-alignments, char::to_lowercase,
// char::is_whitespace). Known difference: Debian 12's utf8proc has Unicode 15
// tables and tokenizers' crates older ones, so characters assigned since may
// normalize or lowercase differently (e.g. NFKC turns U+32FF, Unicode 12.1,
// into "令和" here and leaves it in tokenizers 0.23; the same caveat as
// pcre2_regex.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tessera {

enum class UnicodeForm { kNfc, kNfd, kNfkc, kNfkd };

// Appends `form` of `text` (valid UTF-8) to `out`.
absl::Status UnicodeAppendNormalized(UnicodeForm form, std::string_view text, std::string* out);

// Appends the lowercase of `text` (valid UTF-8) character by character, like
// Rust's char::to_lowercase: the simple mapping plus SpecialCasing's one
// unconditional multi-character lowercase (U+0130 -> "i\u0307"); no
// context-dependent rules such as final sigma.
void UnicodeAppendLowercase(std::string_view text, std::string* out);

// Unicode White_Space (Rust's char::is_whitespace and regex \s).
bool UnicodeIsWhiteSpace(uint32_t code_point);

// Canonical combining class 0 (a "starter" for normalization).
bool UnicodeIsStarter(uint32_t code_point);

}  // namespace tessera
