// A bounded, thread-safe cache of word -> BPE ids. Text repeats its words, so
// most pre-tokens of a long text are cache hits that skip the merge loop.
// Sharded by hash so that concurrent Encode calls rarely wait on each other;
// once full it stops inserting (like Hugging Face's BPE cache) instead of
// evicting, so a hot vocabulary stays and memory stays bounded.
// std::shared_mutex rather than absl::Mutex: Debian's absl::Mutex does
// deadlock-detection bookkeeping on every lock, which cost ~17% of encoding.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"

namespace tessera {

class WordCache {
 public:
  // Words longer than this are never cached.
  static constexpr size_t kMaxWordBytes = 256;

  explicit WordCache(size_t capacity);

  // Appends the cached ids of `word` to `ids` and returns true on a hit.
  bool Lookup(std::string_view word, std::vector<int32_t>* ids) const;
  void Insert(std::string_view word, absl::Span<const int32_t> ids);
  void Clear();

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable std::shared_mutex mu;
    absl::flat_hash_map<std::string, absl::InlinedVector<int32_t, 4>> map;  // guarded by mu
  };

  size_t capacity_per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace tessera
