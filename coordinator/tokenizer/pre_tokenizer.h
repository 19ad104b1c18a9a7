// Pre-tokenization: cuts a piece of text (between added tokens) into the
// words that BPE sees, like Hugging Face's Split, Metaspace and ByteLevel
// pre-tokenizers (alone or in a Sequence). ByteLevel's character mapping is
// not done here: it must be the last step, so BPE maps bytes to its
// byte-level characters itself and the word cache is keyed on raw bytes.
// Metaspace's prepend_scheme "first" needs to know which pieces start at
// offset 0 of the input: each piece carries a `lead` (normalizer.h).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/tokenizer/pcre2_regex.h"

namespace tessera {

// HF SplitDelimiterBehavior.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// HF Metaspace PrependScheme: when a piece gets the replacement in front.
enum class MetaspacePrepend { kAlways, kFirst, kNever };

struct PreTokenizerStep {
  enum class Kind { kSplit, kMetaspace, kByteLevel };
  Kind kind = Kind::kSplit;
  // kSplit
  std::string pattern;
  bool pattern_is_literal = false;  // {"String": ...} rather than {"Regex": ...}
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // kByteLevel
  bool add_prefix_space = false;
  bool use_regex = true;
  // kMetaspace: spaces become `replacement` (one character), which is
  // prepended per `prepend`; `split` cuts before each replacement.
  std::string replacement;
  MetaspacePrepend prepend = MetaspacePrepend::kAlways;
  bool split = true;
  std::string path;  // where it is in tokenizer.json, for messages
};

class PreTokenizer {
 public:
  // `steps` run in order; an empty list keeps each piece whole.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> Create(const std::vector<PreTokenizerStep>& steps);

  // Whether the last step is ByteLevel (BPE then works on byte characters).
  bool byte_level() const { return byte_level_; }

  // Appends the words of `text` (valid UTF-8) to `words`, dropping empty ones.
  // Words are views into `text` or into strings appended to `storage`.
  // `lead`: how many leading bytes of `text` stand for offset 0 of the input
  // (0 when the piece starts later).
  absl::Status Run(std::string_view text, size_t lead, std::deque<std::string>* storage,
                   std::vector<std::string_view>* words) const;

 private:
  struct Step {
    PreTokenizerStep config;
    std::unique_ptr<Pcre2Regex> regex;  // null for Metaspace and for ByteLevel with use_regex=false
  };
  struct Piece {
    std::string_view text;
    size_t lead;  // leading bytes standing for offset 0 of the input
  };
  // Appends the pieces of `piece` to `pieces`, or (last step) their text to `words`.
  absl::Status ApplyStep(const Step& step, Piece piece, std::deque<std::string>* storage, std::vector<Piece>* pieces,
                         std::vector<std::string_view>* words) const;

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

// The GPT-2 pre-tokenizer regex that HF's ByteLevel(use_regex=true) uses.
inline constexpr std::string_view kGpt2SplitPattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

}  // namespace tessera
