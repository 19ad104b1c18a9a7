// Decoders: token strings -> text, like Hugging Face's ByteLevel, Metaspace,
// ByteFallback, Fuse, Strip and Replace decoders (a Sequence of them is
// flattened into steps). In tokenizers each decoder maps the whole list of
// token strings to a new list and the result is joined; here the same chain
// runs as a stream, one token at a time, so that Tokenizer::Decode and the
// StreamingDecoder are one implementation and a streamed text is exactly
// the decoded one. A step holds back only what a later token can still
// change:
//   - ByteLevel: the bytes of an incomplete UTF-8 character;
//   - ByteFallback: a run of <0xAB> tokens until a token that is not one
//     (tokenizers turns an invalid run into one U+FFFD per byte, so even a
//     complete character may not be final while the run goes on);
//   - Strip after Fuse: trailing `content` characters it may strip.
// Steps before the first Fuse see each token (Metaspace counts them: the
// first loses its replacement characters); steps after it see one growing
// text. Replace and ByteFallback after a Fuse, and ByteLevel combined with
// anything, are refused: no published tokenizer.json uses them, and they
// would need the whole text before emitting any of it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer/pcre2_regex.h"

namespace tessera {

struct DecoderStep {
  enum class Kind { kByteLevel, kByteFallback, kFuse, kStrip, kReplace, kMetaspace };
  Kind kind = Kind::kByteLevel;
  std::string content;             // kStrip: the character stripped; kReplace: the replacement;
                                   // kMetaspace: the replacement character
  size_t start = 0;                // kStrip: at most this many leading `content` characters go
  size_t stop = 0;                 // kStrip: ... and this many trailing ones
  std::string pattern;             // kReplace
  bool pattern_is_literal = true;  // kReplace: {"String": ...} rather than {"Regex": ...}
  bool prepend_never = false;      // kMetaspace: prepend_scheme "never" (the first token keeps its spaces)
  std::string path;                // where it is in tokenizer.json, for messages
};

class DecoderStream;

class Decoder {
 public:
  // INVALID_ARGUMENT (naming the step's path) for the combinations above.
  static absl::StatusOr<std::unique_ptr<Decoder>> Create(const std::vector<DecoderStep>& steps);

  // tokenizers' decoder.decode(tokens).
  std::string Decode(const std::vector<std::string_view>& tokens) const;

 private:
  friend class DecoderStream;
  struct Step {
    DecoderStep config;
    std::unique_ptr<Pcre2Regex> regex;  // kReplace
  };
  std::vector<Step> steps_;
  size_t fuse_index_ = 0;    // steps before it see tokens, steps after it the fused text
  bool byte_level_ = false;  // the chain is ByteLevel alone
};

// One decoding in progress. Not thread-safe; the Decoder must outlive it.
class DecoderStream {
 public:
  explicit DecoderStream(const Decoder* decoder);

  // Runs one token string (valid UTF-8) through the chain and appends the
  // text that no later token can change (whole UTF-8 characters only).
  void Push(std::string_view token, std::string* text);

  // Appends everything still held back, as at the end of tokenizers'
  // decode, and starts over.
  void Finish(std::string* text);

  // Bytes held back for later tokens.
  size_t pending_bytes() const;

 private:
  struct StepState {
    std::string byte_run;      // kByteFallback: the bytes of the pending <0xAB> run
    size_t tokens_seen = 0;    // kMetaspace before Fuse: index of the next token
    size_t start_left = 0;     // kStrip after Fuse: leading characters it may still strip
    size_t held = 0;           // kStrip after Fuse: trailing `content` characters held back
  };
  void Reset();
  // Steps [first, fuse_index_) on `tokens` (consumed), then the fused steps.
  void RunTokenSteps(size_t first, std::vector<std::string>* tokens, std::string* text);
  void ApplyTokenStep(size_t index, std::string token, std::vector<std::string>* out);
  void FlushByteRun(StepState& state, std::vector<std::string>* out);
  // Steps [first, end) after the Fuse on a chunk of the fused text.
  void RunFusedSteps(size_t first, std::string chunk, std::string* text);
  std::string ApplyFusedStep(size_t index, std::string_view chunk);

  const Decoder* decoder_;
  std::vector<StepState> states_;  // one per step
  std::string utf8_pending_;       // ByteLevel: an incomplete trailing UTF-8 sequence
};

}  // namespace tessera
