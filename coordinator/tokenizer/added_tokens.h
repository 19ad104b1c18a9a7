// Added tokens (special or not) are cut out of the text before any
// pre-tokenization, exactly like Hugging Face's AddedVocabulary: leftmost-
// longest matching, first the tokens with normalized=false on the raw text,
// then (on each remaining piece, once the normalizer has run on it) those
// with normalized=true, whose contents are normalized the same way; then
// single_word, lstrip and rstrip adjust or veto each match. A byte trie is
// enough here: added-token lists are short and almost every text position
// fails on its first byte.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer/normalizer.h"

namespace tessera {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A piece of the input: either text still to be pre-tokenized, or one
// added token (token_id set) covering `text`.
struct AddedTokenSplit {
  std::string_view text;
  std::optional<int32_t> token_id;
};

class AddedTokenMatcher {
 public:
  // `normalizer` (may be null) normalizes the contents of normalized tokens.
  static absl::StatusOr<std::unique_ptr<AddedTokenMatcher>> Create(const std::vector<AddedToken>& tokens,
                                                                   const Normalizer* normalizer);

  // Splits raw `text` (valid UTF-8) into the normalized=false added tokens
  // and the text between them; empty text pieces are dropped. Views point
  // into `text`.
  std::vector<AddedTokenSplit> SplitRaw(std::string_view text) const { return SplitWith(raw_trie_, text); }
  // The same for normalized text and the normalized=true tokens.
  std::vector<AddedTokenSplit> SplitNormalized(std::string_view text) const {
    return SplitWith(normalized_trie_, text);
  }

 private:
  struct Node {
    int32_t children_begin = 0;  // range in edges_
    int32_t children_end = 0;
    int32_t token = -1;  // index into tokens_ ending here
  };
  struct Edge {
    uint8_t byte;
    int32_t node;
  };
  // One trie per pass (normalized=false first, then normalized=true).
  struct Trie {
    std::vector<Node> nodes;
    std::vector<Edge> edges;
    bool first_byte[256] = {};
    bool empty() const { return nodes.size() <= 1; }
  };
  AddedTokenMatcher() = default;
  // `patterns`: (text to match, index into tokens_).
  static Trie BuildTrie(const std::vector<std::pair<std::string, int32_t>>& patterns);
  std::vector<AddedTokenSplit> SplitWith(const Trie& trie, std::string_view text) const;
  // Longest token starting at text[pos], or -1.
  int32_t LongestAt(const Trie& trie, std::string_view text, size_t pos, size_t* length) const;
  void SplitPass(const Trie& trie, std::string_view text, std::vector<AddedTokenSplit>* out) const;

  std::vector<AddedToken> tokens_;
  Trie raw_trie_;
  Trie normalized_trie_;
};

}  // namespace tessera
