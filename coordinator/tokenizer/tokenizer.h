// Tessera's text side: a BPE tokenizer that loads a Hugging Face
// tokenizer.json and encodes/decodes exactly like the `tokenizers` library
// (golden-tested against it). Encode pipeline, as in HF: cut the
// non-normalized added tokens out of the raw text -> normalize each
// remaining piece (normalizer.h) -> cut the normalized added tokens out ->
// pre-tokenize each remaining piece (Split / Metaspace / ByteLevel, PCRE2)
// -> BPE each word (cached) -> add the template's special tokens. Decode:
// token strings -> the decoder chain (decoder.h) -> text.
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
class Decoder;
class Normalizer;
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

  // The token string `id` hands the decoder: nullopt for a special token
  // when skipping them. INVALID_ARGUMENT for an id outside the vocabulary.
  // With decoder(), the building blocks of Decode and StreamingDecoder.
  absl::StatusOr<std::optional<std::string_view>> DecoderInput(int32_t id, bool skip_special_tokens) const;
  const Decoder& decoder() const { return *decoder_; }

  // Empties the word cache (benchmarks measure cold encoding with it).
  void ClearCache() const;

 private:
  struct TokenEntry {
    std::string content;  // the token as spelt in tokenizer.json
    bool special = false;
  };
  Tokenizer();
  absl::Status Init(TokenizerSpec spec);

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<AddedTokenMatcher> added_tokens_;
  absl::flat_hash_map<std::string, int32_t> added_ids_;  // content -> id
  absl::flat_hash_map<int32_t, TokenEntry> entries_;     // id -> token
  std::vector<int32_t> special_prefix_;
  std::vector<int32_t> special_suffix_;
  int32_t vocab_size_ = 0;
};

}  // namespace tessera
