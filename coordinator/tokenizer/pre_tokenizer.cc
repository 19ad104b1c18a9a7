// Split / ByteLevel pre-tokenizers; the delimiter behaviours mirror
// NormalizedString::split in Hugging Face tokenizers.
#include "coordinator/tokenizer/pre_tokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/tokenizer/absl_view.h"

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
        if (!regex.ok())
          return absl::InvalidArgumentError(absl::StrCat("pre_tokenizer Split: ", regex.status().message()));
        step.regex = *std::move(regex);
        break;
      }
      case PreTokenizerStep::Kind::kByteLevel: {
        if (i + 1 != steps.size()) {
          return absl::InvalidArgumentError(
              "unsupported pre_tokenizer 'ByteLevel' before other steps (it must be the last step of a Sequence)");
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

absl::Status PreTokenizer::ApplyStep(const Step& step, std::string_view piece, std::deque<std::string>* storage,
                                     std::vector<std::string_view>* out) const {
  const PreTokenizerStep& config = step.config;
  SplitBehavior behavior = config.behavior;
  bool invert = config.invert;
  if (config.kind == PreTokenizerStep::Kind::kByteLevel) {
    if (config.add_prefix_space && (piece.empty() || piece.front() != ' ')) {
      storage->push_back(absl::StrCat(" ", AbslView(piece)));
      piece = storage->back();
    }
    if (step.regex == nullptr) {
      if (!piece.empty()) out->push_back(piece);
      return absl::OkStatus();
    }
    behavior = SplitBehavior::kIsolated;
    invert = false;
  }
  std::vector<Span> spans;
  if (absl::Status s = FindSpans(*step.regex, piece, invert, &spans); !s.ok()) return s;
  ApplyBehavior(behavior, &spans);
  for (const Span& s : spans) {
    if (!s.flag && s.end > s.begin) out->push_back(piece.substr(s.begin, s.end - s.begin));
  }
  return absl::OkStatus();
}

absl::Status PreTokenizer::Run(std::string_view text, std::deque<std::string>* storage,
                               std::vector<std::string_view>* words) const {
  if (text.empty()) return absl::OkStatus();
  if (steps_.empty()) {
    words->push_back(text);
    return absl::OkStatus();
  }
  if (steps_.size() == 1) return ApplyStep(steps_[0], text, storage, words);
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  for (size_t i = 0; i < steps_.size(); ++i) {
    std::vector<std::string_view>* out = i + 1 == steps_.size() ? words : &next;
    for (std::string_view piece : current) {
      if (absl::Status s = ApplyStep(steps_[i], piece, storage, out); !s.ok()) return s;
    }
    if (out == &next) {
      current.swap(next);
      next.clear();
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera
