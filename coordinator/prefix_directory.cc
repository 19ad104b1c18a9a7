// Keys chain like the workers' (a hash of the previous key, the salt and the
// block's tokens) but are the coordinator's own: the two never compare keys,
// so each process may seed its hash as it likes. A collision here only sends
// a request to a worker that has less of it cached.
#include "coordinator/prefix_directory.h"

#include <algorithm>
#include <vector>

#include "absl/hash/hash.h"

namespace tessera {
namespace {

uint64_t ChainKey(uint64_t parent_key, absl::string_view salt, absl::Span<const int32_t> tokens) {
  return absl::HashOf(parent_key, salt, tokens);
}

}  // namespace

PrefixHint PrefixDirectory::Longest(absl::string_view salt, absl::Span<const int32_t> ids, int64_t block_tokens) {
  PrefixHint hint;
  if (block_tokens <= 0 || ids.empty()) return hint;
  const int64_t blocks = (static_cast<int64_t>(ids.size()) - 1) / block_tokens;
  absl::MutexLock lock(&mu_);
  std::vector<std::list<uint64_t>::iterator> run;
  uint64_t key = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    key = ChainKey(key, salt, ids.subspan(b * block_tokens, block_tokens));
    auto it = by_key_.find(key);
    if (it == by_key_.end()) break;
    // Deeper blocks may sit on another worker (a later, longer prompt): the
    // longest run wins, wherever it is.
    if (!it->second.address.empty()) {
      hint.address = it->second.address;
      hint.tokens = (b + 1) * block_tokens;
    }
    if (!it->second.segments.empty()) hint.segments = it->second.segments;
    run.push_back(it->second.where);
  }
  TouchDeepestFirstLocked(run);
  return hint;
}

void PrefixDirectory::Record(absl::string_view salt, absl::Span<const int32_t> ids, int64_t block_tokens,
                             const std::string& address) {
  if (block_tokens <= 0) return;
  const int64_t blocks = static_cast<int64_t>(ids.size()) / block_tokens;
  absl::MutexLock lock(&mu_);
  std::vector<std::list<uint64_t>::iterator> run;
  uint64_t key = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    key = ChainKey(key, salt, ids.subspan(b * block_tokens, block_tokens));
    auto it = by_key_.find(key);
    if (it != by_key_.end()) {
      it->second.address = address;
    } else {
      lru_.push_front(key);
      it = by_key_.emplace(key, Entry{address, {}, lru_.begin()}).first;
    }
    run.push_back(it->second.where);
  }
  TouchDeepestFirstLocked(run);
  while (static_cast<int64_t>(by_key_.size()) > max_blocks_) EraseLocked(lru_.back());
}

void PrefixDirectory::RecordSegments(absl::string_view salt, absl::Span<const int32_t> ids, int64_t block_tokens,
                                     const std::vector<SegmentHint>& shards) {
  if (block_tokens <= 0 || shards.empty()) return;
  const int64_t blocks = std::min<int64_t>(static_cast<int64_t>(ids.size()), shards.back().end) / block_tokens;
  absl::MutexLock lock(&mu_);
  std::vector<std::list<uint64_t>::iterator> run;
  uint64_t key = 0;
  size_t shard = 0;  // the first shard not yet wholly before this block's end
  for (int64_t b = 0; b < blocks; ++b) {
    key = ChainKey(key, salt, ids.subspan(b * block_tokens, block_tokens));
    const int64_t end = (b + 1) * block_tokens;
    while (shard < shards.size() && shards[shard].end < end) ++shard;
    auto it = by_key_.find(key);  // every block, so that a walk reaches the later ends
    if (it == by_key_.end()) {
      lru_.push_front(key);
      it = by_key_.emplace(key, Entry{std::string(), {}, lru_.begin()}).first;
    }
    if (shard < shards.size() && shards[shard].end == end) {  // a shard ends here
      it->second.segments.assign(shards.begin(), shards.begin() + shard + 1);
    }
    run.push_back(it->second.where);
  }
  TouchDeepestFirstLocked(run);
  while (static_cast<int64_t>(by_key_.size()) > max_blocks_) EraseLocked(lru_.back());
}

void PrefixDirectory::Forget(const std::string& address) {
  absl::MutexLock lock(&mu_);
  if (address.empty()) {
    by_key_.clear();
    lru_.clear();
    return;
  }
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    Entry& e = it->second;
    bool changed = false;
    if (e.address == address) {
      e.address.clear();
      changed = true;
    }
    for (const SegmentHint& s : e.segments) {
      if (s.address == address) {
        e.segments.clear();
        changed = true;
        break;
      }
    }
    // Entries that only carry a walk on to deeper ones stay.
    if (!changed || !e.address.empty() || !e.segments.empty()) {
      ++it;
      continue;
    }
    lru_.erase(e.where);
    it = by_key_.erase(it);
  }
}

int64_t PrefixDirectory::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(by_key_.size());
}

// The first blocks end up the most recent, so a chain is forgotten from its
// end, never from its start (which would strand the rest).
void PrefixDirectory::TouchDeepestFirstLocked(const std::vector<std::list<uint64_t>::iterator>& run) {
  for (auto it = run.rbegin(); it != run.rend(); ++it) lru_.splice(lru_.begin(), lru_, *it);
}

void PrefixDirectory::EraseLocked(uint64_t key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  lru_.erase(it->second.where);
  by_key_.erase(it);
}

}  // namespace tessera
