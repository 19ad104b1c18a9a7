// BPE merge loop; mirrors Hugging Face's BPE::merge_word / Word::merge_all.
#include "coordinator/tokenizer/bpe_model.h"

#include <queue>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator/tokenizer/absl_view.h"
#include "coordinator/tokenizer/byte_level.h"
#include "coordinator/tokenizer/utf8.h"

namespace tessera {
namespace {

constexpr size_t kCacheCapacity = 1 << 16;

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool removed;
};

struct QueuedMerge {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  // std::priority_queue pops the greatest: lowest rank, then leftmost.
  bool operator<(const QueuedMerge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(const BpeConfig& config, bool byte_level_input) {
  auto model = std::unique_ptr<BpeModel>(new BpeModel(kCacheCapacity));
  model->byte_level_input_ = byte_level_input;
  model->fuse_unk_ = config.fuse_unk;
  model->byte_fallback_ = config.byte_fallback;
  model->ignore_merges_ = config.ignore_merges;
  model->vocab_.reserve(config.vocab.size());
  for (const auto& [token, id] : config.vocab) model->vocab_[token] = id;

  for (size_t rank = 0; rank < config.merges.size(); ++rank) {
    const auto& [left, right] = config.merges[rank];
    const auto l = model->vocab_.find(left);
    const auto r = model->vocab_.find(right);
    const auto merged = model->vocab_.find(absl::StrCat(left, right));
    if (l == model->vocab_.end() || r == model->vocab_.end() || merged == model->vocab_.end()) {
      const std::string missing = l == model->vocab_.end()   ? left
                                  : r == model->vocab_.end() ? right
                                                             : absl::StrCat(left, right);
      return absl::InvalidArgumentError(
          absl::StrCat("BPE merge ", rank, " ('", left, "' '", right, "') uses '", missing, "', not in the vocab"));
    }
    // Like HF (a HashMap collected in order), a repeated pair keeps its last rank.
    model->merges_[PairKey(l->second, r->second)] = {static_cast<int32_t>(rank), merged->second};
  }

  if (config.unk_token.has_value()) {
    const auto it = model->vocab_.find(*config.unk_token);
    if (it == model->vocab_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("BPE unk_token '", *config.unk_token, "' is not in the vocab"));
    }
    model->unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    const auto byte_char = model->vocab_.find(AbslView(ByteLevelCharOf(static_cast<uint8_t>(b))));
    model->byte_ids_[b] = byte_char == model->vocab_.end() ? -1 : byte_char->second;
    const auto fallback = model->vocab_.find(absl::StrFormat("<0x%02X>", b));
    model->fallback_ids_[b] = fallback == model->vocab_.end() ? -1 : fallback->second;
  }
  return model;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  const auto it = vocab_.find(AbslView(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::InitialSymbols(std::string_view word, std::vector<int32_t>* symbols) const {
  int32_t pending_unk_count = 0;  // unknown units waiting to become unk ids
  const auto flush_unk = [&] {
    if (pending_unk_count > 0) symbols->push_back(unk_id_);
    pending_unk_count = 0;
  };
  size_t pos = 0;
  while (pos < word.size()) {
    std::string_view unit;  // the symbol's spelling in the vocab
    int32_t id = -1;
    if (byte_level_input_) {
      const uint8_t b = static_cast<uint8_t>(word[pos]);
      unit = ByteLevelCharOf(b);
      id = byte_ids_[b];
      pos += 1;
    } else {
      size_t n = Utf8SequenceLength(word, pos);
      if (n == 0) n = 1;  // unreachable for validated text
      unit = word.substr(pos, n);
      pos += n;
      const auto it = vocab_.find(AbslView(unit));
      if (it != vocab_.end()) id = it->second;
    }
    if (id >= 0) {
      flush_unk();
      symbols->push_back(id);
      continue;
    }
    if (byte_fallback_) {
      bool all_known = true;
      for (char c : unit) all_known = all_known && fallback_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all_known) {
        for (char c : unit) symbols->push_back(fallback_ids_[static_cast<uint8_t>(c)]);
        continue;  // HF keeps a pending unk waiting across byte-fallback units
      }
    }
    if (unk_id_ < 0) continue;  // no unk token: the unit is dropped
    if (pending_unk_count > 0 && !fuse_unk_) flush_unk();
    ++pending_unk_count;
  }
  flush_unk();
}

void BpeModel::MergeAll(std::vector<int32_t>* ids) const {
  const int32_t n = static_cast<int32_t>(ids->size());
  if (n < 2) return;
  std::vector<Symbol> symbols(n);
  std::vector<QueuedMerge> storage;
  storage.reserve(n);
  std::priority_queue<QueuedMerge> queue(std::less<QueuedMerge>(), std::move(storage));
  for (int32_t i = 0; i < n; ++i) symbols[i] = {(*ids)[i], i - 1, i + 1 < n ? i + 1 : -1, false};
  const auto rule_of = [&](int32_t left, int32_t right) -> const MergeRule* {
    const auto it = merges_.find(PairKey(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const MergeRule* rule = rule_of(symbols[i].id, symbols[i + 1].id)) queue.push({rule->rank, i, rule->new_id});
  }
  while (!queue.empty()) {
    const QueuedMerge top = queue.top();
    queue.pop();
    Symbol& current = symbols[top.pos];
    if (current.removed || current.next < 0) continue;
    const Symbol right = symbols[current.next];
    const MergeRule* rule = rule_of(current.id, right.id);
    if (rule == nullptr || rule->new_id != top.new_id) continue;  // stale entry
    current.id = top.new_id;
    symbols[current.next].removed = true;
    current.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (current.prev >= 0) {
      if (const MergeRule* r = rule_of(symbols[current.prev].id, current.id)) {
        queue.push({r->rank, current.prev, r->new_id});
      }
    }
    if (current.next >= 0) {
      if (const MergeRule* r = rule_of(current.id, symbols[current.next].id)) queue.push({r->rank, top.pos, r->new_id});
    }
  }
  ids->clear();
  for (const Symbol& s : symbols) {
    if (!s.removed) ids->push_back(s.id);
  }
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (cache_.Lookup(word, ids)) return;
  std::vector<int32_t> symbols;
  if (ignore_merges_) {
    std::string spelled;
    if (byte_level_input_) ByteLevelAppendEncoded(word, &spelled);
    const auto it = vocab_.find(AbslView(byte_level_input_ ? std::string_view(spelled) : word));
    if (it != vocab_.end()) symbols.push_back(it->second);
  }
  if (symbols.empty()) {
    symbols.reserve(word.size());
    InitialSymbols(word, &symbols);
    MergeAll(&symbols);
  }
  cache_.Insert(word, symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
}

}  // namespace tessera
