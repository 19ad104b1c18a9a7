// Tessera's text side: a byte-level BPE tokenizer that loads a Hugging Face
// tokenizer.json and encodes/decodes exactly like the `tokenizers` library
// (golden-tested against it). Encode pipeline, as in HF: cut added tokens out
// of the raw text -> pre-tokenize each remaining piece (Split / ByteLevel
// regexes, PCRE2) -> BPE each word (cached) -> add the template's special
// tokens. Decode: token strings -> bytes (ByteLevel) -> UTF-8, lossy.
//
// Invalid UTF-8 in Encode's input is an INVALID_ARGUMENT error naming the
// byte offset (HF's API only takes valid strings, so there is nothing to be
// exact to, and silently replacing bytes would hide client bugs). Decode never
// fails on bytes: invalid sequences become U+FFFD, like HF. Decode refuses ids
// outside the vocabulary (HF silently drops them).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace tessera {

class AddedTokenMatcher;
class BpeModel;
class PreTokenizer;
struct TokenizerSpec;

class Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view json);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Thread-safe. add_special_tokens applies the post-processor template
  // (e.g. BOS); special tokens written in the text are always recognised.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens) const;

  // Like HF decode(ids, skip_special_tokens).
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const;

  // One past the largest id of the vocabulary and added tokens.
  int32_t vocab_size() const { return vocab_size_; }
  std::optional<int32_t> TokenToId(std::string_view token) const;
  std::optional<std::string_view> IdToToken(int32_t id) const;
  bool IsSpecialToken(int32_t id) const;

  // The raw bytes `id` contributes to decoded text (nothing for a special
  // token when skipping them); the building block of Decode and
  // StreamingDecoder. INVALID_ARGUMENT for an id outside the vocabulary.
  absl::Status AppendTokenBytes(int32_t id, bool skip_special_tokens, std::string* bytes) const;

  // Empties the word cache (benchmarks measure cold encoding with it).
  void ClearCache() const;

 private:
  struct TokenEntry {
    std::string content;  // the token as spelt in tokenizer.json
    std::string bytes;    // what the ByteLevel decoder turns it into
    bool special = false;
  };
  Tokenizer();
  absl::Status Init(TokenizerSpec spec);

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<AddedTokenMatcher> added_tokens_;
  absl::flat_hash_map<std::string, int32_t> added_ids_;  // content -> id
  absl::flat_hash_map<int32_t, TokenEntry> entries_;     // id -> token
  std::vector<int32_t> special_prefix_;
  std::vector<int32_t> special_suffix_;
  int32_t vocab_size_ = 0;
};

}  // namespace tessera
