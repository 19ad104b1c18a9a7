// Split / Metaspace / ByteLevel pre-tokenizers; the delimiter behaviours
// mirror NormalizedString::split in Hugging Face tokenizers.
#include "coordinator/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/tokenizer/absl_view.h"
#include "coordinator/tokenizer/utf8.h"

namespace tessera {
namespace {

struct Span {
  size_t begin;
  size_t end;
  bool flag;  // is_match before the behaviour is applied, "remove" after
};

// The matches of `regex` in `piece` plus the gaps between them, covering it.
absl::Status FindSpans(const Pcre2Regex& regex, std::string_view piece, bool invert, std::vector<Span>* spans) {
  if (piece.empty()) {
    spans->push_back({0, 0, invert});
    return absl::OkStatus();
  }
  std::vector<RegexMatch> matches;
  if (absl::Status s = regex.FindAll(piece, &matches); !s.ok()) return s;
  size_t prev = 0;
  for (const RegexMatch& m : matches) {
    if (prev != m.begin) spans->push_back({prev, m.begin, invert});
    spans->push_back({m.begin, m.end, !invert});
    prev = m.end;
  }
  if (prev != piece.size()) spans->push_back({prev, piece.size(), invert});
  return absl::OkStatus();
}

// Rewrites `spans` (flag = is_match) into pieces (flag = remove).
void ApplyBehavior(SplitBehavior behavior, std::vector<Span>* spans) {
  std::vector<Span> out;
  out.reserve(spans->size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (Span s : *spans) out.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      out = *spans;
      break;
    case SplitBehavior::kContiguous:
      for (const Span& s : *spans) {
        if (s.flag == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.begin, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : *spans) {
        if (s.flag && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.begin, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans->rbegin(); it != spans->rend(); ++it) {
        if (it->flag && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back({it->begin, it->end, false});
        }
        previous_match = it->flag;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  *spans = std::move(out);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::Create(const std::vector<PreTokenizerStep>& steps) {
  auto pre = std::unique_ptr<PreTokenizer>(new PreTokenizer());
  for (size_t i = 0; i < steps.size(); ++i) {
    const PreTokenizerStep& config = steps[i];
    Step step{config, nullptr};
    switch (config.kind) {
      case PreTokenizerStep::Kind::kSplit: {
        auto regex = Pcre2Regex::Compile(config.pattern, config.pattern_is_literal);
        if (!regex.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(config.path, ".pattern: ", regex.status().message()));
        }
        step.regex = *std::move(regex);
        break;
      }
      case PreTokenizerStep::Kind::kMetaspace:
        if (config.replacement.empty() || Utf8SequenceLength(config.replacement, 0) != config.replacement.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat(config.path, ".replacement must be one character. Given: '", config.replacement, "'"));
        }
        break;
      case PreTokenizerStep::Kind::kByteLevel: {
        if (i + 1 != steps.size()) {
          return absl::InvalidArgumentError(absl::StrCat(
              config.path, ".type 'ByteLevel' before other steps is not supported (it must be the last step)"));
        }
        if (config.use_regex) {
          auto regex = Pcre2Regex::Compile(kGpt2SplitPattern, /*literal=*/false);
          if (!regex.ok()) return regex.status();
          step.regex = *std::move(regex);
        }
        pre->byte_level_ = true;
        break;
      }
    }
    pre->steps_.push_back(std::move(step));
  }
  return pre;
}

absl::Status PreTokenizer::ApplyStep(const Step& step, Piece piece, std::deque<std::string>* storage,
                                     std::vector<Piece>* pieces, std::vector<std::string_view>* words) const {
  const auto emit = [&](Piece p) {
    if (p.text.empty()) return;
    if (words != nullptr) {
      words->push_back(p.text);
    } else {
      pieces->push_back(p);
    }
  };
  const PreTokenizerStep& config = step.config;
  SplitBehavior behavior = config.behavior;
  bool invert = config.invert;
  std::vector<Span> spans;
  switch (config.kind) {
    case PreTokenizerStep::Kind::kSplit:
      break;
    case PreTokenizerStep::Kind::kByteLevel:
      if (config.add_prefix_space && (piece.text.empty() || piece.text.front() != ' ')) {
        storage->push_back(absl::StrCat(" ", AbslView(piece.text)));
        piece = {storage->back(), piece.lead > 0 ? piece.lead + 1 : 0};
      }
      if (step.regex == nullptr) {
        emit(piece);
        return absl::OkStatus();
      }
      behavior = SplitBehavior::kIsolated;
      invert = false;
      break;
    case PreTokenizerStep::Kind::kMetaspace: {
      // Spaces become the replacement; tokenizers' replace keeps each one's
      // alignment, so the lead grows by what its spaces grew by.
      const std::string& replacement = config.replacement;
      std::string text;
      text.reserve(piece.text.size() + replacement.size());
      size_t lead = 0;
      for (size_t i = 0; i < piece.text.size(); ++i) {
        if (piece.text[i] == ' ') {
          text.append(replacement);
        } else {
          text.push_back(piece.text[i]);
        }
        if (i + 1 == piece.lead) lead = text.size();
      }
      const bool starts_with_replacement = text.compare(0, replacement.size(), replacement) == 0;
      const bool prepend = !starts_with_replacement && !text.empty() &&
                           (config.prepend == MetaspacePrepend::kAlways ||
                            (config.prepend == MetaspacePrepend::kFirst && lead > 0));
      if (prepend) {
        text.insert(0, replacement);
        if (lead > 0) lead += replacement.size();
      }
      storage->push_back(std::move(text));
      piece = {storage->back(), lead};
      if (!config.split) {
        emit(piece);
        return absl::OkStatus();
      }
      // Split on the replacement character, MergedWithNext.
      size_t prev = 0;
      for (size_t pos = piece.text.find(replacement); pos != std::string_view::npos;
           pos = piece.text.find(replacement, pos + replacement.size())) {
        if (prev != pos) spans.push_back({prev, pos, false});
        spans.push_back({pos, pos + replacement.size(), true});
        prev = pos + replacement.size();
      }
      if (prev != piece.text.size()) spans.push_back({prev, piece.text.size(), false});
      behavior = SplitBehavior::kMergedWithNext;
      break;
    }
  }
  if (step.regex != nullptr) {
    if (absl::Status s = FindSpans(*step.regex, piece.text, invert, &spans); !s.ok()) return s;
  }
  ApplyBehavior(behavior, &spans);
  for (const Span& s : spans) {
    if (s.flag || s.end <= s.begin) continue;
    const size_t lead = piece.lead > s.begin ? std::min(piece.lead, s.end) - s.begin : 0;
    emit({piece.text.substr(s.begin, s.end - s.begin), lead});
  }
  return absl::OkStatus();
}

absl::Status PreTokenizer::Run(std::string_view text, size_t lead, std::deque<std::string>* storage,
                               std::vector<std::string_view>* words) const {
  if (text.empty()) return absl::OkStatus();
  if (steps_.empty()) {
    words->push_back(text);
    return absl::OkStatus();
  }
  std::vector<Piece> current{{text, lead}};
  std::vector<Piece> next;
  for (size_t i = 0; i < steps_.size(); ++i) {
    const bool last = i + 1 == steps_.size();
    for (const Piece& piece : current) {
      if (absl::Status s = ApplyStep(steps_[i], piece, storage, &next, last ? words : nullptr); !s.ok()) return s;
    }
    current.swap(next);
    next.clear();
  }
  return absl::OkStatus();
}

}  // namespace tessera
