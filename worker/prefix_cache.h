// Exact prefix reuse on one worker: the state at the end of a prefix is the
// initial state of what follows (DESIGN.md, "The same identity inside one
// worker"), so a request whose prompt starts with blocks another request
// already prefilled here can copy their state and prefill only the rest.
//
// A block is `block_tokens` consecutive prompt tokens at a multiple of
// block_tokens. Its entry holds what the prefix up to its end leaves behind
// that is not in its parent's entry: its own K/V rows (block_tokens rows per
// attention layer) and the conv tail + SSM state at its end (every Mamba
// layer), a ShardState of its own. Entries form chains from position 0, keyed
// by a hash over (parent's key, salt, the block's tokens); a match is also
// checked token by token, salt and parent included, so a hash collision
// costs a miss, never a wrong state.
//
// Memory: entries are immutable once inserted and reference-counted (a
// request copying from them holds them); the cache evicts least recently used
// leaves (an entry with no cached child: evicting a parent would strand its
// children) that no one holds. A lookup touches its chain from the deepest
// block to the first, so chains shorten from their ends. The owner
// (ShardRunner) decides how many bytes the cache may keep: running requests
// come first, the cache gets what is left of the budget.
//
// Threads: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "worker/engine.h"
#include "worker/shard_state.h"
#include "worker/worker_metrics.h"

namespace tessera {

// The default --prefix-block-tokens before rounding up to the SSD chunk. A
// block boundary costs a prefill piece boundary (a few hundred launches, one
// host synchronisation, the weights read once more) and one conv + SSM state
// (StateBytesPerRequest: tens of MB on 8B shapes, as much as 1-4K tokens of
// K/V there) for each block kept. Measured on an H200 (8B-shaped model, 64K
// prompt, prefix_reuse_bench and end to end, bench/RESULTS.md): blocks of
// 1024 made a cold prefill 12-20% slower (64 pieces), blocks of 4096 and
// 8192 cost nothing measurable, and a question after the document took
// 1.4-1.8% of the first request's time to first token at all three. 4096
// keeps half the states of 2048 and recomputes at most 4095 tokens of a
// shared prefix (~12 ms of a 64K prompt's 330).
inline constexpr int64_t kDefaultPrefixBlockTokens = 4096;

// `requested` tokens per block, or for -1 the default: kDefaultPrefixBlockTokens
// rounded up to a multiple of `ssd_chunk_tokens`; 0 turns reuse off.
// INVALID_ARGUMENT (to follow the flag's name) for other negatives.
absl::StatusOr<int64_t> ChoosePrefixBlockTokens(int64_t requested, int64_t ssd_chunk_tokens);

class PrefixCache {
 public:
  struct Block;  // one cached block (prefix_cache.cc)
  using BlockRef = std::shared_ptr<const Block>;

  // `engine` and `metrics` (optional) must outlive the cache; block_tokens 0: off.
  PrefixCache(Engine& engine, int64_t block_tokens, WorkerMetrics* metrics);
  ~PrefixCache();

  int64_t block_tokens() const { return block_tokens_; }
  bool enabled() const { return block_tokens_ > 0; }
  // Bytes the entries hold now (what the memory gauges count as cache).
  int64_t bytes() const;
  int64_t blocks() const;

  // The longest chain of cached blocks that starts `ids` (under `salt`) and
  // covers at most `max_tokens` tokens: held (not evictable) while the
  // returned refs live. Empty when none.
  std::vector<BlockRef> Lookup(absl::string_view salt, absl::Span<const int32_t> ids, int64_t max_tokens);
  // Continues a fresh `state` (at position 0) with `chain`: its K/V rows and
  // the last block's Mamba states. The state is then at chain.size() blocks.
  absl::Status Restore(absl::Span<const BlockRef> chain, ShardState& state);

  // Keeps the block of `ids` that ends at `state`'s position (a multiple of
  // block_tokens; `ids` the prompt from position 0, at least that long) from
  // `state`, whose K/V covers the block and whose Mamba states are the ones
  // at its end. Nothing happens when the block is cached already, when its
  // parent is not (the chain was evicted meanwhile), or when it would take
  // the cache past `max_bytes` after evicting what can go.
  absl::Status Insert(absl::string_view salt, absl::Span<const int32_t> ids, const ShardState& state,
                      int64_t max_bytes);

  // Segments: what one shard of a multi-shard prefill leaves behind, kept
  // whole: `state`'s K/V (from its kv_begin() to its position, the shard's
  // span) and its Mamba states at that position, keyed by the salt and
  // `prefix` (the prompt from position 0 to the state's position, compared
  // token by token on a match). Evicted like blocks (a segment is a leaf).
  absl::Status InsertSegment(absl::string_view salt, absl::Span<const int32_t> prefix, const ShardState& state,
                             int64_t max_bytes);
  // The segment of `prefix` that starts at `begin`, held while the ref
  // lives; null when none.
  BlockRef FindSegment(absl::string_view salt, absl::Span<const int32_t> prefix, int64_t begin);
  // Continues a fresh `state` (at the segment's begin) with its K/V rows up
  // to `end` and, with `copy_mamba` (only when `end` is the segment's end),
  // its Mamba states.
  absl::Status RestoreSegment(const BlockRef& segment, int64_t end, bool copy_mamba, ShardState& state);

  // Evicts least recently used leaves that no one holds until the cache holds
  // at most `max_bytes`; returns the bytes freed.
  int64_t EvictTo(int64_t max_bytes);
  // Evicts every entry no one holds (held ones go once released and evicted
  // later); returns the bytes freed.
  int64_t Drop();

 private:
  struct Entry;
  using Lru = std::list<std::shared_ptr<Entry>>;  // most recent first

  const Entry* FindLocked(uint64_t key, const Entry* parent, absl::string_view salt, absl::Span<const int32_t> tokens,
                          int64_t begin) const;
  void TouchLocked(const Entry& entry);
  int64_t EvictToLocked(int64_t max_bytes, const Entry* keep);
  void PublishLocked();

  Engine& engine_;
  const int64_t block_tokens_;
  WorkerMetrics* const metrics_;
  mutable std::mutex mu_;
  Lru lru_;
  std::unordered_multimap<uint64_t, Lru::iterator> by_key_;
  int64_t bytes_ = 0;
};

}  // namespace tessera
