// Capacity arithmetic in bytes, rounded down to whole tokens, saturating.
#include "coordinator/worker_capacity.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/striped_rounds.h"

namespace tessera {
namespace {

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t low, int64_t high) {
  if (value >= low && value <= high) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("it reports ", field, " = ", value, ", outside [", low, ", ", high, "]"));
}

}  // namespace

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return a > 0 ? INT64_MAX : INT64_MIN;
  return sum;
}

int64_t SaturatingMul(int64_t a, int64_t b) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
  return product;
}

absl::Status CheckWorkerStatus(const v1::WorkerStatus& s) {
  struct Field {
    absl::string_view name;
    int64_t value;
    int64_t high;
  };
  const Field fields[] = {
      {"memory_budget_bytes", s.memory_budget_bytes(), kMaxReportedBytes},
      {"memory_used_bytes", s.memory_used_bytes(), kMaxReportedBytes},
      {"kv_bytes_per_token", s.kv_bytes_per_token(), kMaxReportedBytes},
      {"state_bytes_per_request", s.state_bytes_per_request(), kMaxReportedBytes},
      {"max_context_tokens", s.max_context_tokens(), kUnboundedTokens},
      {"max_shard_tokens", s.max_shard_tokens(), kUnboundedTokens},
      {"prefill_chunk_tokens", s.prefill_chunk_tokens(), kUnboundedTokens},
      {"chunk_size", s.chunk_size(), int64_t{1} << 20},
      {"num_layers", s.num_layers(), int64_t{1} << 20},
      {"active_requests", s.active_requests(), INT32_MAX},
  };
  for (const Field& field : fields) {
    if (absl::Status status = CheckRange(field.name, field.value, 0, field.high); !status.ok()) return status;
  }
  return CheckRange("eos_token_id", s.eos_token_id(), -1, INT32_MAX);
}

int64_t WorkerFreeTokens(const v1::WorkerStatus& status, int64_t held_bytes) {
  const int64_t room =
      SaturatingAdd(SaturatingAdd(status.memory_budget_bytes(), -std::max<int64_t>(0, held_bytes)),
                    -std::max<int64_t>(0, status.state_bytes_per_request()));
  if (room < 0) return 0;
  int64_t tokens = 0;
  if (status.kv_bytes_per_token() <= 0) {
    tokens = status.max_context_tokens() > 0 ? status.max_context_tokens() : kUnboundedTokens;
  } else {
    tokens = room / status.kv_bytes_per_token();
  }
  // An older worker runs every shard in one pass.
  if (status.prefill_chunk_tokens() <= 0) tokens = std::min(tokens, WorkerPassTokens(status));
  return std::clamp<int64_t>(tokens, 0, kUnboundedTokens);
}

int64_t WorkerPassTokens(const v1::WorkerStatus& status) {
  return status.max_shard_tokens() > 0 ? std::min(status.max_shard_tokens(), kUnboundedTokens) : kUnboundedTokens;
}

int32_t WorkerPrefillRounds(const v1::WorkerStatus& status) {
  return static_cast<int32_t>(std::clamp<int64_t>(status.max_prefill_rounds(), 1, kMaxPrefillRounds));
}

int64_t ShardReservationBytes(const v1::WorkerStatus& status, int64_t tokens) {
  return SaturatingAdd(SaturatingMul(std::max<int64_t>(0, status.kv_bytes_per_token()), std::max<int64_t>(0, tokens)),
                       std::max<int64_t>(0, status.state_bytes_per_request()));
}

}  // namespace tessera
