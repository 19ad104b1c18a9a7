// Where prefix reuse can happen: which worker was last given each block of
// each one-shard prompt (under its cache_salt), so that a later request that
// starts with the same blocks goes to that worker and resumes from its cache
// (worker/prefix_cache.h).
//
// A hint, not a record: the coordinator does not ask workers what they still
// hold. A worker that evicted the blocks (or restarted) simply prefills more;
// the result is the same either way, because the worker itself finds what it
// can reuse, token by token. Keeping the map here is the simpler of the two
// exact choices: asking every worker before each admission would add a round
// trip per request and a race with its eviction all the same.
//
// Bounded: at most `max_blocks` keys, least recently recorded or matched
// forgotten first. Threads: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace tessera {

// One shard of a multi-shard plan whose worker keeps its span at its end.
struct SegmentHint {
  std::string address;
  int64_t begin = 0;  // global positions [begin, end)
  int64_t end = 0;
};

struct PrefixHint {
  std::string address;  // empty: no worker holds a block of this prompt
  int64_t tokens = 0;   // how many leading tokens it was given
  // The longest prefix a multi-shard plan left on its workers, shard by
  // shard from position 0 (empty: none); it ends at segments.back().end.
  std::vector<SegmentHint> segments;
};

class PrefixDirectory {
 public:
  explicit PrefixDirectory(int64_t max_blocks = 1 << 20) : max_blocks_(max_blocks) {}

  // The worker holding the longest run of whole blocks of `block_tokens` at
  // the start of `ids` under `salt`, leaving at least the last token to run.
  PrefixHint Longest(absl::string_view salt, absl::Span<const int32_t> ids, int64_t block_tokens);
  // `address` now holds every whole block of `ids` (the prompt it prefills).
  void Record(absl::string_view salt, absl::Span<const int32_t> ids, int64_t block_tokens, const std::string& address);
  // A multi-shard plan of `ids` under `salt`: each shard's worker keeps its
  // span at its end (worker/prefix_cache.h segments); those that end on a
  // block boundary can start a later prompt's resumed plan.
  void RecordSegments(absl::string_view salt, absl::Span<const int32_t> ids, int64_t block_tokens,
                      const std::vector<SegmentHint>& shards);
  // Forgets the worker (it left, or dropped its cache); empty: forgets all.
  void Forget(const std::string& address);
  int64_t size() const;

 private:
  struct Entry {
    std::string address;                // one-shard prompts: the worker last given the block
    std::vector<SegmentHint> segments;  // a multi-shard plan's shards up to this block's end
    std::list<uint64_t>::iterator where;
  };
  void EraseLocked(uint64_t key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TouchDeepestFirstLocked(const std::vector<std::list<uint64_t>::iterator>& run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t max_blocks_;
  mutable absl::Mutex mu_;
  std::list<uint64_t> lru_ ABSL_GUARDED_BY(mu_);  // most recent first
  std::unordered_map<uint64_t, Entry> by_key_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera
