// The one place that talks to PCRE2. Hugging Face tokenizers run their
// pre-tokenizer regexes on Oniguruma; this wrapper makes PCRE2 agree with it:
// UTF + UCP mode, \s \S \w \W rewritten to Oniguruma's Unicode definitions
// (PCRE2's \s also matches U+180E, its \w misses marks), and match iteration
// with Oniguruma's find_iter rule for empty matches. JIT when available.
// Known difference: Debian 12's PCRE2 10.42 has Unicode 14 tables, so code
// points assigned after Unicode 14 (e.g. CJK Extension I, Egyptian
// Hieroglyphs Extended-A) are not \p{L} here and may pre-tokenize
// differently from a tokenizers build with newer tables.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera {

struct RegexMatch {
  size_t begin = 0;  // byte offsets into the subject
  size_t end = 0;
};

class Pcre2Regex {
 public:
  // `literal`: match `pattern` as a plain string (HF's {"String": ...}).
  static absl::StatusOr<std::unique_ptr<Pcre2Regex>> Compile(std::string_view pattern, bool literal);
  ~Pcre2Regex();
  Pcre2Regex(const Pcre2Regex&) = delete;
  Pcre2Regex& operator=(const Pcre2Regex&) = delete;

  // Appends every match in `subject` (valid UTF-8), left to right, skipping an
  // empty match that starts where the previous match ended. Thread-safe.
  absl::Status FindAll(std::string_view subject, std::vector<RegexMatch>* matches) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Pcre2Regex() = default;
  std::string pattern_;   // as given, for messages
  void* code_ = nullptr;  // pcre2_code_8*
};

// Exposed for tests: the pattern with \s \S \w \W replaced by explicit
// Unicode classes that match what Oniguruma matches.
std::string RewriteToOnigurumaClasses(std::string_view pattern);

}  // namespace tessera
