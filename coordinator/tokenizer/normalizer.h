// Normalizers: rewrite each piece of input text (between non-normalized
// added tokens) before pre-tokenization, like Hugging Face's NFC / NFD /
// NFKC / NFKD, Lowercase, Strip, Prepend and Replace (a Sequence of them is
// flattened into steps). tokenizers also keeps an alignment from every
// normalized byte back to the original text; the only thing Tessera needs
// from it is whether a piece starts at offset 0 of the input (Metaspace's
// prepend_scheme "first"), so a normalizer here carries a `lead`: how many
// leading bytes of the text still stand for the input's first character.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/tokenizer/pcre2_regex.h"
#include "coordinator/tokenizer/unicode.h"

namespace tessera {

struct NormalizerStep {
  enum class Kind { kUnicode, kLowercase, kStrip, kPrepend, kReplace };
  Kind kind = Kind::kUnicode;
  UnicodeForm form = UnicodeForm::kNfc;  // kUnicode
  bool strip_left = false;               // kStrip: Unicode White_Space at the start
  bool strip_right = false;              // kStrip: ... and at the end
  std::string content;                   // kPrepend: the prefix; kReplace: the replacement
  std::string pattern;                   // kReplace
  bool pattern_is_literal = true;        // kReplace: {"String": ...} rather than {"Regex": ...}
  std::string path;                      // where it is in tokenizer.json, for messages
};

class Normalizer {
 public:
  // `steps` run in order; an empty list leaves text unchanged.
  static absl::StatusOr<std::unique_ptr<Normalizer>> Create(const std::vector<NormalizerStep>& steps);

  bool empty() const { return steps_.empty(); }

  // Replaces *text (valid UTF-8) by its normalized form. *lead: on entry the
  // number of leading bytes that stand for offset 0 of the input (the length
  // of the first character, or 0 for a piece that starts later); on return
  // the same for the normalized text.
  absl::Status Normalize(std::string* text, size_t* lead) const;

 private:
  struct Step {
    NormalizerStep config;
    std::unique_ptr<Pcre2Regex> regex;  // kReplace
  };
  absl::Status Replace(const Step& step, std::string* text, size_t* lead) const;

  std::vector<Step> steps_;
};

}  // namespace tessera
