// Normalizer steps; each mirrors the NormalizedString method that Hugging
// Face's normalizer of the same name calls, and moves `lead` the way that
// method moves the alignment of the first original character.
#include "coordinator/tokenizer/normalizer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/tokenizer/absl_view.h"
#include "coordinator/tokenizer/utf8.h"

namespace tessera {
namespace {

// Byte length of the character at text[pos] (1 for a stray byte).
size_t CharLength(std::string_view text, size_t pos) {
  const size_t n = Utf8SequenceLength(text, pos);
  return n == 0 ? 1 : n;
}

uint32_t CodePointAt(std::string_view text, size_t pos) { return Utf8DecodeAt(text, pos, CharLength(text, pos)); }

// Normal forms are computed on the whole text; the lead becomes the
// normalized form of the old lead and the combining marks that follow it
// (they may compose with it or be reordered into it), when that is a prefix
// of the result, else the result's first character.
absl::Status ApplyUnicode(UnicodeForm form, std::string* text, size_t* lead) {
  std::string out;
  out.reserve(text->size() + text->size() / 4);
  RETURN_IF_ERROR(UnicodeAppendNormalized(form, *text, &out));
  if (*lead > 0) {
    size_t end = std::min(*lead, text->size());
    while (end < text->size() && !UnicodeIsStarter(CodePointAt(*text, end))) end += CharLength(*text, end);
    std::string head;
    RETURN_IF_ERROR(UnicodeAppendNormalized(form, std::string_view(*text).substr(0, end), &head));
    *lead = out.compare(0, head.size(), head) == 0 ? head.size() : (out.empty() ? 0 : CharLength(out, 0));
  }
  *text = std::move(out);
  return absl::OkStatus();
}

void ApplyLowercase(std::string* text, size_t* lead) {
  const size_t split = std::min(*lead, text->size());
  std::string out;
  out.reserve(text->size());
  UnicodeAppendLowercase(std::string_view(*text).substr(0, split), &out);
  *lead = out.size();
  UnicodeAppendLowercase(std::string_view(*text).substr(split), &out);
  *text = std::move(out);
}

void ApplyStrip(bool left, bool right, std::string* text, size_t* lead) {
  const std::string_view view(*text);
  size_t begin = 0;
  if (left) {
    while (begin < view.size() && UnicodeIsWhiteSpace(CodePointAt(view, begin))) begin += CharLength(view, begin);
  }
  size_t end = view.size();
  if (right) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<uint8_t>(view[start]) & 0xC0) == 0x80) --start;
      if (!UnicodeIsWhiteSpace(CodePointAt(view, start))) break;
      end = start;
    }
  }
  *lead = std::min(*lead > begin ? *lead - begin : 0, end - begin);
  *text = std::string(view.substr(begin, end - begin));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> Normalizer::Create(const std::vector<NormalizerStep>& steps) {
  auto normalizer = std::unique_ptr<Normalizer>(new Normalizer());
  for (const NormalizerStep& config : steps) {
    Step step{config, nullptr};
    if (config.kind == NormalizerStep::Kind::kReplace) {
      auto regex = Pcre2Regex::Compile(config.pattern, config.pattern_is_literal);
      if (!regex.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(config.path, ".pattern: ", regex.status().message()));
      }
      step.regex = *std::move(regex);
    }
    normalizer->steps_.push_back(std::move(step));
  }
  return normalizer;
}

absl::Status Normalizer::Normalize(std::string* text, size_t* lead) const {
  for (const Step& step : steps_) {
    const NormalizerStep& config = step.config;
    switch (config.kind) {
      case NormalizerStep::Kind::kUnicode:
        RETURN_IF_ERROR(ApplyUnicode(config.form, text, lead));
        break;
      case NormalizerStep::Kind::kLowercase:
        ApplyLowercase(text, lead);
        break;
      case NormalizerStep::Kind::kStrip:
        ApplyStrip(config.strip_left, config.strip_right, text, lead);
        break;
      case NormalizerStep::Kind::kPrepend:
        // Like tokenizers: only a non-empty text gets the prefix, which
        // takes the alignment of the text's first character.
        if (!text->empty()) {
          text->insert(0, config.content);
          if (*lead > 0) *lead += config.content.size();
        }
        break;
      case NormalizerStep::Kind::kReplace:
        RETURN_IF_ERROR(Replace(step, text, lead));
        break;
    }
  }
  return absl::OkStatus();
}

// NormalizedString::replace: every match, empty ones included, becomes the
// content. The content takes the alignment of the match's last byte (of
// nothing, i.e. offset 0, for an empty match at the very start).
absl::Status Normalizer::Replace(const Step& step, std::string* text, size_t* lead) const {
  if (text->empty()) return absl::OkStatus();
  std::vector<RegexMatch> matches;
  RETURN_IF_ERROR(step.regex->FindAll(*text, &matches));
  if (matches.empty()) return absl::OkStatus();
  const std::string_view in(*text);
  const std::string& content = step.config.content;
  const size_t old_lead = *lead;
  size_t new_lead = 0;
  bool leading = true;  // everything appended so far stands for offset 0
  std::string out;
  out.reserve(in.size() + matches.size() * content.size());
  const auto copy = [&](size_t begin, size_t end) {
    out.append(in.substr(begin, end - begin));
    if (!leading || begin == end) return;
    const size_t at_zero = old_lead > begin ? std::min(old_lead, end) - begin : 0;
    new_lead += at_zero;
    leading = at_zero == end - begin;
  };
  size_t last_end = 0;
  for (const RegexMatch& m : matches) {
    copy(last_end, m.begin);
    out.append(content);
    if (leading && !content.empty()) {
      const bool at_zero = m.end == 0 || m.end - 1 < old_lead;
      if (at_zero) {
        new_lead += content.size();
      } else {
        leading = false;
      }
    }
    last_end = m.end;
  }
  copy(last_end, in.size());
  *text = std::move(out);
  *lead = new_lead;
  return absl::OkStatus();
}

}  // namespace tessera
