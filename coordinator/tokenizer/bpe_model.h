// The BPE model: turns one pre-tokenized word into ids with the merge rules
// of a Hugging Face tokenizer.json, including unk_token / fuse_unk /
// byte_fallback / ignore_merges. Merges are applied lowest rank first (ties:
// leftmost) with a priority queue over a linked list of symbols, so a word of
// n symbols costs O(n log n); results are memoised in a WordCache.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "coordinator/tokenizer/word_cache.h"

namespace tessera {

struct BpeConfig {
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // `byte_level_input`: words arrive as raw bytes and each byte stands for its
  // GPT-2 byte-level character; otherwise each UTF-8 character is a symbol.
  static absl::StatusOr<std::unique_ptr<BpeModel>> Create(const BpeConfig& config, bool byte_level_input);

  // Appends the ids of `word` (non-empty, valid UTF-8 unless byte-level).
  // Thread-safe.
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  const absl::flat_hash_map<std::string, int32_t>& vocab() const { return vocab_; }

  // Drops every cached word (benchmarks use it to measure a cold cache).
  void ClearCache() { cache_.Clear(); }

 private:
  struct MergeRule {
    int32_t rank;
    int32_t new_id;
  };
  explicit BpeModel(size_t cache_capacity) : cache_(cache_capacity) {}
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  // Initial symbols (one per character/byte, after unk and byte fallback).
  void InitialSymbols(std::string_view word, std::vector<int32_t>* symbols) const;
  void MergeAll(std::vector<int32_t>* symbols) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  absl::flat_hash_map<uint64_t, MergeRule> merges_;
  bool byte_level_input_ = false;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t unk_id_ = -1;                    // -1: unknown characters are dropped
  std::array<int32_t, 256> byte_ids_;      // id of the byte-level char of each byte, or -1
  std::array<int32_t, 256> fallback_ids_;  // id of "<0xXX>", or -1
  mutable WordCache cache_;
};

}  // namespace tessera
