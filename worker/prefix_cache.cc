// One lock over the index and the LRU list; the copies in and out of a block
// run outside it (a held BlockRef keeps the block alive, and a block never
// changes once inserted).
#include "worker/prefix_cache.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tessera {

struct PrefixCache::Block {
  std::unique_ptr<ShardState> state;  // K/V of the block's rows, Mamba states at its end
  int64_t begin = 0;                  // global position of its first token
  int64_t tokens = 0;
};

struct PrefixCache::Entry {
  uint64_t key = 0;
  const Entry* parent = nullptr;  // null: the first block; never evicted before this one
  std::string salt;
  std::vector<int32_t> tokens;    // (block_tokens); a segment's: the whole prefix, from position 0
  int64_t begin = 0;              // the block's (or segment's) first position
  std::shared_ptr<Block> block;   // use_count() > 1: a request is copying from it
  int64_t bytes = 0;
  int children = 0;               // cached entries whose parent this is
  Lru::iterator where;            // its place in lru_
};

namespace {

uint64_t ChainKey(uint64_t parent_key, absl::string_view salt, absl::Span<const int32_t> tokens) {
  return absl::HashOf(parent_key, salt, tokens);
}

uint64_t SegmentKey(absl::string_view salt, absl::Span<const int32_t> prefix, int64_t begin) {
  return absl::HashOf(absl::string_view("segment"), salt, prefix, begin);
}

}  // namespace

absl::StatusOr<int64_t> ChoosePrefixBlockTokens(int64_t requested, int64_t ssd_chunk_tokens) {
  if (requested >= 0) return requested;
  if (requested != -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("must be >= 0 (0: no prefix reuse; leave it out for the default). Given: ", requested));
  }
  const int64_t chunk = std::max<int64_t>(1, ssd_chunk_tokens);
  return (kDefaultPrefixBlockTokens + chunk - 1) / chunk * chunk;
}

PrefixCache::PrefixCache(Engine& engine, int64_t block_tokens, WorkerMetrics* metrics)
    : engine_(engine), block_tokens_(std::max<int64_t>(0, block_tokens)), metrics_(metrics) {
  std::lock_guard<std::mutex> lock(mu_);
  PublishLocked();
}

PrefixCache::~PrefixCache() = default;

int64_t PrefixCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

int64_t PrefixCache::blocks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(lru_.size());
}

const PrefixCache::Entry* PrefixCache::FindLocked(uint64_t key, const Entry* parent, absl::string_view salt,
                                                  absl::Span<const int32_t> tokens, int64_t begin) const {
  auto [first, last] = by_key_.equal_range(key);
  for (auto it = first; it != last; ++it) {
    const Entry& e = **it->second;
    if (e.parent == parent && e.begin == begin && e.salt == salt && absl::MakeConstSpan(e.tokens) == tokens) {
      return &e;
    }
  }
  return nullptr;
}

void PrefixCache::TouchLocked(const Entry& entry) { lru_.splice(lru_.begin(), lru_, entry.where); }

std::vector<PrefixCache::BlockRef> PrefixCache::Lookup(absl::string_view salt, absl::Span<const int32_t> ids,
                                                       int64_t max_tokens) {
  std::vector<BlockRef> chain;
  if (!enabled()) return chain;
  const int64_t blocks = std::min<int64_t>(max_tokens, static_cast<int64_t>(ids.size())) / block_tokens_;
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const Entry*> found;
  const Entry* parent = nullptr;
  uint64_t key = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    const absl::Span<const int32_t> tokens = ids.subspan(b * block_tokens_, block_tokens_);
    key = ChainKey(key, salt, tokens);
    const Entry* e = FindLocked(key, parent, salt, tokens, b * block_tokens_);
    if (e == nullptr) break;
    found.push_back(e);
    parent = e;
  }
  // Deepest first, so that the first blocks end up the most recent: a chain
  // is evicted from its end.
  for (auto it = found.rbegin(); it != found.rend(); ++it) TouchLocked(**it);
  for (const Entry* e : found) chain.push_back(e->block);
  return chain;
}

absl::Status PrefixCache::Restore(absl::Span<const BlockRef> chain, ShardState& state) {
  for (size_t i = 0; i < chain.size(); ++i) {
    const Block& b = *chain[i];
    RETURN_IF_ERROR(engine_.AppendState(state, *b.state, b.begin, b.tokens, /*copy_mamba=*/i + 1 == chain.size()));
  }
  if (metrics_ != nullptr && !chain.empty()) {
    metrics_->prefix_cache_hit_tokens.Increment(static_cast<double>(chain.size() * block_tokens_));
  }
  return absl::OkStatus();
}

absl::Status PrefixCache::Insert(absl::string_view salt, absl::Span<const int32_t> ids, const ShardState& state,
                                 int64_t max_bytes) {
  if (!enabled()) return absl::OkStatus();
  const int64_t end = state.num_tokens();
  if (end % block_tokens_ != 0 || end <= 0 || end > static_cast<int64_t>(ids.size())) {
    return absl::InternalError(absl::StrCat("no prefix block ends at ", end, " (blocks of ", block_tokens_,
                                            " tokens, ", ids.size(), " ids)"));
  }
  const int64_t index = end / block_tokens_ - 1;
  // The chain up to the block's parent, and whether the block is new.
  auto locate = [&](const Entry*& parent, uint64_t& key) -> bool {
    parent = nullptr;
    key = 0;
    for (int64_t b = 0; b <= index; ++b) {
      const absl::Span<const int32_t> tokens = ids.subspan(b * block_tokens_, block_tokens_);
      key = ChainKey(key, salt, tokens);
      const Entry* e = FindLocked(key, parent, salt, tokens, b * block_tokens_);
      if (b == index) return e == nullptr;
      if (e == nullptr) return false;  // its parent is gone
      parent = e;
    }
    return false;
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Entry* parent;
    uint64_t key;
    if (!locate(parent, key)) return absl::OkStatus();
  }
  // The copy, outside the lock.
  auto block = std::make_shared<Block>();
  block->begin = end - block_tokens_;
  block->tokens = block_tokens_;
  // K/V (block_tokens, Hkv·D) per attention layer, conv (K-1, C) and SSM (H, P·N) per Mamba layer.
  ASSIGN_OR_RETURN(block->state, engine_.NewState(block->begin, block_tokens_));
  RETURN_IF_ERROR(engine_.AppendState(*block->state, state, block->begin, block_tokens_, /*copy_mamba=*/true));
  const int64_t bytes = block->state->MemoryBytes();

  std::lock_guard<std::mutex> lock(mu_);
  const Entry* parent;
  uint64_t key;
  if (!locate(parent, key)) return absl::OkStatus();  // inserted or stranded meanwhile
  if (bytes > max_bytes) return absl::OkStatus();
  if (bytes_ + bytes > max_bytes) {
    EvictToLocked(max_bytes - bytes, parent);
    if (bytes_ + bytes > max_bytes) return absl::OkStatus();
  }
  auto entry = std::make_shared<Entry>();
  entry->key = key;
  entry->parent = parent;
  entry->salt = std::string(salt);
  entry->tokens.assign(ids.begin() + block->begin, ids.begin() + end);
  entry->begin = block->begin;
  entry->block = std::move(block);
  entry->bytes = bytes;
  lru_.push_front(entry);
  entry->where = lru_.begin();
  by_key_.emplace(key, entry->where);
  if (parent != nullptr) ++const_cast<Entry*>(parent)->children;
  // Its ancestors more recent than it: the chain shortens from its end.
  for (const Entry* e = parent; e != nullptr; e = e->parent) TouchLocked(*e);
  bytes_ += bytes;
  PublishLocked();
  return absl::OkStatus();
}

absl::Status PrefixCache::InsertSegment(absl::string_view salt, absl::Span<const int32_t> prefix,
                                        const ShardState& state, int64_t max_bytes) {
  if (!enabled()) return absl::OkStatus();
  const int64_t begin = state.kv_begin();
  const int64_t end = state.num_tokens();
  if (end != static_cast<int64_t>(prefix.size()) || begin >= end || !state.has_mamba_states()) {
    return absl::InternalError(absl::StrCat("no segment [", begin, ", ", end, ") of a ", prefix.size(),
                                            "-token prefix"));
  }
  const uint64_t key = SegmentKey(salt, prefix, begin);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (FindLocked(key, nullptr, salt, prefix, begin) != nullptr) return absl::OkStatus();
  }
  auto block = std::make_shared<Block>();
  block->begin = begin;
  block->tokens = end - begin;
  // K/V (end - begin, Hkv·D) per attention layer, conv (K-1, C) and SSM (H, P·N) per Mamba layer.
  ASSIGN_OR_RETURN(block->state, engine_.NewState(begin, end - begin));
  RETURN_IF_ERROR(engine_.AppendState(*block->state, state, begin, end - begin, /*copy_mamba=*/true));
  const int64_t bytes = block->state->MemoryBytes();
  std::lock_guard<std::mutex> lock(mu_);
  if (FindLocked(key, nullptr, salt, prefix, begin) != nullptr || bytes > max_bytes) return absl::OkStatus();
  if (bytes_ + bytes > max_bytes) {
    EvictToLocked(max_bytes - bytes, nullptr);
    if (bytes_ + bytes > max_bytes) return absl::OkStatus();
  }
  auto entry = std::make_shared<Entry>();
  entry->key = key;
  entry->salt = std::string(salt);
  entry->tokens.assign(prefix.begin(), prefix.end());
  entry->begin = begin;
  entry->block = std::move(block);
  entry->bytes = bytes;
  lru_.push_front(entry);
  entry->where = lru_.begin();
  by_key_.emplace(key, entry->where);
  bytes_ += bytes;
  PublishLocked();
  return absl::OkStatus();
}

PrefixCache::BlockRef PrefixCache::FindSegment(absl::string_view salt, absl::Span<const int32_t> prefix,
                                               int64_t begin) {
  if (!enabled()) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  const Entry* e = FindLocked(SegmentKey(salt, prefix, begin), nullptr, salt, prefix, begin);
  if (e == nullptr) return nullptr;
  TouchLocked(*e);
  return e->block;
}

absl::Status PrefixCache::RestoreSegment(const BlockRef& segment, int64_t end, bool copy_mamba, ShardState& state) {
  const Block& b = *segment;
  if (end <= b.begin || end > b.begin + b.tokens || (copy_mamba && end != b.begin + b.tokens)) {
    return absl::InternalError(absl::StrCat("a segment of [", b.begin, ", ", b.begin + b.tokens, ") restored to ", end));
  }
  RETURN_IF_ERROR(engine_.AppendState(state, *b.state, b.begin, end - b.begin, copy_mamba));
  if (metrics_ != nullptr) metrics_->prefix_cache_hit_tokens.Increment(static_cast<double>(end - b.begin));
  return absl::OkStatus();
}

// `keep` and its ancestors stay (the parent of a block about to be inserted).
int64_t PrefixCache::EvictToLocked(int64_t max_bytes, const Entry* keep) {
  int64_t freed = 0;
  bool evicted = true;
  while (bytes_ > max_bytes && evicted) {
    evicted = false;
    for (auto it = lru_.end(); it != lru_.begin();) {
      --it;
      Entry& e = **it;
      if (e.children > 0 || e.block.use_count() > 1) continue;
      bool kept = false;
      for (const Entry* k = keep; k != nullptr && !kept; k = k->parent) kept = k == &e;
      if (kept) continue;
      auto [first, last] = by_key_.equal_range(e.key);
      for (auto k = first; k != last; ++k) {
        if (k->second == it) {
          by_key_.erase(k);
          break;
        }
      }
      if (e.parent != nullptr) --const_cast<Entry*>(e.parent)->children;
      bytes_ -= e.bytes;
      freed += e.bytes;
      if (metrics_ != nullptr) metrics_->prefix_cache_evictions.Increment();
      lru_.erase(it);  // its parent may be a leaf now: the next round sees it
      evicted = true;
      break;
    }
  }
  PublishLocked();
  return freed;
}

int64_t PrefixCache::EvictTo(int64_t max_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  return EvictToLocked(std::max<int64_t>(0, max_bytes), nullptr);
}

int64_t PrefixCache::Drop() {
  std::lock_guard<std::mutex> lock(mu_);
  return EvictToLocked(0, nullptr);
}

void PrefixCache::PublishLocked() {
  if (metrics_ == nullptr) return;
  metrics_->prefix_cache_bytes.Set(static_cast<double>(bytes_));
  metrics_->prefix_cache_blocks.Set(static_cast<double>(lru_.size()));
}

}  // namespace tessera
