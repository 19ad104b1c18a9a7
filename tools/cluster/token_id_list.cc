// A hand-written scanner rather than a JSON parser: the plain forms are not
// JSON, and the JSON form needs nothing beyond brackets around the plain one.
#include "tools/cluster/token_id_list.h"

#include <algorithm>
#include <limits>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tessera {
namespace {

std::string Describe(absl::string_view text, size_t offset) {
  if (offset >= text.size()) return "the end of the input";
  const size_t end = std::min(text.size(), offset + 12);
  return absl::StrCat("'", absl::CEscape(text.substr(offset, end - offset)), "'");
}

absl::Status ErrorAt(absl::string_view text, size_t offset, absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("token ids: at offset ", offset, ": expected ", expected, ", found ", Describe(text, offset)));
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> ParseTokenIdList(absl::string_view text) {
  size_t pos = 0;
  const auto skip_space = [&] {
    while (pos < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[pos]))) ++pos;
  };
  skip_space();
  const bool bracketed = pos < text.size() && text[pos] == '[';
  if (bracketed) ++pos;

  std::vector<int32_t> ids;
  bool after_comma = false;
  while (true) {
    skip_space();
    if (pos >= text.size() || (bracketed && text[pos] == ']')) {
      if (after_comma) return ErrorAt(text, pos, "a token id after ','");
      break;
    }
    if (!absl::ascii_isdigit(static_cast<unsigned char>(text[pos]))) {
      if (text[pos] == '-') return ErrorAt(text, pos, "a token id (ids are >= 0)");
      return ErrorAt(text, pos, "a token id");
    }
    const size_t begin = pos;
    int64_t id = 0;
    while (pos < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[pos]))) {
      id = id * 10 + (text[pos] - '0');
      if (id > std::numeric_limits<int32_t>::max()) {
        return absl::InvalidArgumentError(absl::StrCat("token ids: at offset ", begin, ": ",
                                                       "id out of range (must be <= 2147483647)"));
      }
      ++pos;
    }
    ids.push_back(static_cast<int32_t>(id));
    // An id ends at whitespace, a comma, the closing bracket, or the end.
    const size_t after_id = pos;
    skip_space();
    after_comma = pos < text.size() && text[pos] == ',';
    if (after_comma) {
      ++pos;
    } else if (pos == after_id && pos < text.size() && !(bracketed && text[pos] == ']')) {
      return ErrorAt(text, pos, "',' or whitespace after a token id");
    }
  }
  if (bracketed) {
    if (pos >= text.size()) return ErrorAt(text, pos, "']'");
    ++pos;
    skip_space();
    if (pos < text.size()) return ErrorAt(text, pos, "nothing after ']'");
  }
  return ids;
}

}  // namespace tessera
