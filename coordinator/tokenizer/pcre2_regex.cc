// PCRE2 compile/match with Oniguruma-compatible classes and iteration.
#include "coordinator/tokenizer/pcre2_regex.h"

#include "coordinator/tokenizer/absl_view.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "coordinator/tokenizer/utf8.h"

namespace tessera {
namespace {

// Unicode White_Space, which is Oniguruma's \s (PCRE2's adds U+180E).
constexpr std::string_view kSpaceClass =
    "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
// Oniguruma's Unicode \w: Letter | Mark | Number | Connector_Punctuation.
constexpr std::string_view kWordClass = "\\p{L}\\p{M}\\p{N}\\p{Pc}";

pcre2_code* Code(void* code) { return static_cast<pcre2_code*>(code); }

// One match-data block per thread, big enough for the whole-match offsets.
pcre2_match_data* ThreadMatchData() {
  struct Holder {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~Holder() { pcre2_match_data_free(data); }
  };
  thread_local Holder holder;
  return holder.data;
}

std::string Pcre2ErrorMessage(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0) return absl::StrCat("error ", code);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

std::string RewriteToOnigurumaClasses(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  size_t i = 0;
  while (i < p.size()) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      if (e == 'Q') {  // \Q...\E quotes everything up to \E
        const size_t end = p.find("\\E", i + 2);
        const size_t stop = end == std::string_view::npos ? p.size() : end + 2;
        out.append(p.substr(i, stop - i));
        i = stop;
        continue;
      }
      const bool space = e == 's' || e == 'S';
      const bool word = e == 'w' || e == 'W';
      const bool negated = e == 'S' || e == 'W';
      if (space || word) {
        const std::string_view cls = space ? kSpaceClass : kWordClass;
        if (!in_class) {
          absl::StrAppend(&out, negated ? "[^" : "[", AbslView(cls), "]");
        } else if (!negated) {
          out.append(cls);
        } else {
          out.append(p.substr(i, 2));  // a negated class inside [...] stays PCRE2's
        }
      } else {
        out.append(p.substr(i, 2));
      }
      i += 2;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      ++i;
      if (i < p.size() && p[i] == '^') out.push_back(p[i++]);
      if (i < p.size() && p[i] == ']') out.push_back(p[i++]);  // leading ']' is literal
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // [:alpha:]
      const size_t end = p.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out.append(p.substr(i, end + 2 - i));
        i = end + 2;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
    ++i;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Pcre2Regex>> Pcre2Regex::Compile(std::string_view pattern, bool literal) {
  const std::string source = literal ? std::string(pattern) : RewriteToOnigurumaClasses(pattern);
  // PCRE2_LITERAL refuses PCRE2_UCP (it has no classes to apply it to).
  const uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
  if (Utf8FirstInvalid(pattern) != pattern.size()) {
    return absl::InvalidArgumentError("regex pattern is not valid UTF-8");
  }
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), options, &error_code,
                                   &error_offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("invalid regex '", AbslView(pattern),
                                                   "': ", Pcre2ErrorMessage(error_code), " at offset ", error_offset));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: falls back to the interpreter
  std::unique_ptr<Pcre2Regex> regex(new Pcre2Regex());
  regex->pattern_ = std::string(pattern);
  regex->code_ = code;
  return regex;
}

Pcre2Regex::~Pcre2Regex() { pcre2_code_free(Code(code_)); }

absl::Status Pcre2Regex::FindAll(std::string_view subject, std::vector<RegexMatch>* matches) const {
  pcre2_match_data* data = ThreadMatchData();
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t search_from = 0;
  bool have_last = false;
  size_t last_match_end = 0;
  while (search_from <= subject.size()) {
    int rc = pcre2_match(Code(code_), text, subject.size(), search_from, PCRE2_NO_UTF_CHECK, data, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc =
          pcre2_match(Code(code_), text, subject.size(), search_from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, data, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("regex '", pattern_, "' failed on a ", subject.size(), "-byte piece: ", Pcre2ErrorMessage(rc)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (end < begin || end > subject.size()) {  // only \K tricks can do this
      return absl::InvalidArgumentError(absl::StrCat("regex '", pattern_, "' produced an inverted match"));
    }
    if (begin == end && have_last && last_match_end == end) {
      // Oniguruma skips an empty match right after the previous match and
      // moves on by one character.
      const size_t n = search_from < subject.size() ? Utf8SequenceLength(subject, search_from) : 1;
      search_from += n == 0 ? 1 : n;
      continue;
    }
    matches->push_back({begin, end});
    search_from = end;
    have_last = true;
    last_match_end = end;
  }
  return absl::OkStatus();
}

}  // namespace tessera
