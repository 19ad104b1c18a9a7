// Sharded word cache (see word_cache.h).
#include "coordinator/tokenizer/word_cache.h"

#include "absl/hash/hash.h"
#include "coordinator/tokenizer/absl_view.h"

namespace tessera {

WordCache::WordCache(size_t capacity) : capacity_per_shard_((capacity + kShards - 1) / kShards) {}

namespace {

// The map's own hash (absl::Hash of the string), computed once per call; the
// shard comes from its top bits, which the map itself uses least.
size_t HashOf(std::string_view word) { return absl::Hash<absl::string_view>{}(AbslView(word)); }
size_t ShardOf(size_t hash) { return hash >> 60; }

}  // namespace

bool WordCache::Lookup(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.size() > kMaxWordBytes || capacity_per_shard_ == 0) return false;
  const size_t hash = HashOf(word);
  const Shard& shard = shards_[ShardOf(hash)];
  std::shared_lock lock(shard.mu);
  auto it = shard.map.find(AbslView(word), hash);
  if (it == shard.map.end()) return false;
  ids->insert(ids->end(), it->second.begin(), it->second.end());
  return true;
}

void WordCache::Insert(std::string_view word, absl::Span<const int32_t> ids) {
  if (word.size() > kMaxWordBytes) return;
  Shard& shard = shards_[ShardOf(HashOf(word))];
  std::unique_lock lock(shard.mu);
  if (shard.map.size() >= capacity_per_shard_) return;
  shard.map.try_emplace(std::string(word), ids.begin(), ids.end());
}

void WordCache::Clear() {
  for (Shard& shard : shards_) {
    std::unique_lock lock(shard.mu);
    shard.map.clear();
  }
}

}  // namespace tessera
