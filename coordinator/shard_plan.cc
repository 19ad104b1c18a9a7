// Chunk-aligned contiguous shard boundaries.
#include "coordinator/shard_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tessera {

absl::StatusOr<std::vector<int64_t>> PlanShardBounds(int64_t prompt_tokens, int64_t chunk_size, int num_shards) {
  if (num_shards < 1 || num_shards > prompt_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("cannot cut ", prompt_tokens, " tokens into ", num_shards,
                                                   " non-empty shards"));
  }
  if (chunk_size < 1) return absl::InvalidArgumentError(absl::StrCat("chunk size must be >= 1. Given: ", chunk_size));
  const int64_t chunks = (prompt_tokens + chunk_size - 1) / chunk_size;
  const bool aligned = chunks >= num_shards;
  const int64_t units = aligned ? chunks : prompt_tokens;  // what is dealt out: chunks or tokens
  const int64_t unit = aligned ? chunk_size : 1;
  std::vector<int64_t> bounds = {0};
  for (int r = 0; r < num_shards; ++r) {
    const int64_t share = units / num_shards + (r < units % num_shards ? 1 : 0);
    bounds.push_back(std::min(prompt_tokens, bounds.back() + share * unit));
  }
  return bounds;
}

int ChooseShardCount(int64_t prompt_tokens, int workers, int64_t min_shard_tokens) {
  const int64_t by_length = std::max<int64_t>(1, prompt_tokens / std::max<int64_t>(1, min_shard_tokens));
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({workers, by_length, prompt_tokens})));
}

}  // namespace tessera
