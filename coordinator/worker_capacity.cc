// Capacity arithmetic in bytes, rounded down to whole tokens.
#include "coordinator/worker_capacity.h"

#include <algorithm>

namespace tessera {

int64_t WorkerFreeTokens(const v1::WorkerStatus& status, int64_t held_bytes) {
  const int64_t room = status.memory_budget_bytes() - held_bytes - status.state_bytes_per_request();
  if (room < 0) return 0;
  int64_t tokens = 0;
  if (status.kv_bytes_per_token() <= 0) {
    tokens = status.max_context_tokens() > 0 ? status.max_context_tokens() : kUnboundedTokens;
  } else {
    tokens = room / status.kv_bytes_per_token();
  }
  return status.max_shard_tokens() > 0 ? std::min(tokens, status.max_shard_tokens()) : tokens;
}

int64_t ShardReservationBytes(const v1::WorkerStatus& status, int64_t tokens) {
  return std::max<int64_t>(0, status.kv_bytes_per_token()) * tokens + status.state_bytes_per_request();
}

}  // namespace tessera
