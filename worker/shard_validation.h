// The worker's checks of what its callers send, before anything is taken:
// a RunShardRequest (as ShardRequest) against the model and this worker's
// limits, a split-KV query's numbers, and the memory a shard needs, all
// with arithmetic that no number can overflow. Shared by the shard runner
// and the fuzz targets (tests/fuzz) that feed it arbitrary messages.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include <vector>

#include "model/model_config.h"
#include "worker/shard_context.h"
#include "worker/shard_request.h"

namespace tessera {

// Sampling limits, as the coordinator's (coordinator/request_validation.h).
inline constexpr float kMaxRepetitionPenalty = 100.0f;
inline constexpr float kMaxPresenceFrequencyPenalty = 2.0f;
inline constexpr float kMaxLogitBias = 100.0f;
inline constexpr int64_t kMaxLogitBiasEntries = 1024;

// What a request is checked against.
struct ShardLimits {
  int64_t memory_budget_bytes = int64_t{1} << 30;
  int64_t max_context_tokens = 0;       // the served context; 0: none (positions stay below 2^40)
  int32_t max_new_tokens_limit = 4096;  // the largest max_new_tokens
};

// INVALID_ARGUMENT naming what is wrong and the limit: the request id and
// secret; shards (or a zigzag plan's pieces) non-empty, contiguous from 0, at most kMaxShardsPerRequest,
// prefill_rounds in [1, kMaxPrefillRounds], > 1 only for a contiguous plan of several shards each
// holding at least that many tokens, and with no prefix;
// with addresses; the rank's token count and ids inside the vocabulary;
// max_new_tokens in [1, max_new_tokens_limit] on the last shard (<= it
// elsewhere); the served context; stop ids and eos; finite sampling values
// in range (penalties, min_p, logit_bias, logprobs, min_tokens, the
// penalty's prompt ids too); reserved_bytes within the budget; a non-negative peer timeout;
// an NCCL unique id of 128 bytes.
absl::Status ValidateShardRequest(const ShardRequest& r, const ModelConfig& config, const ShardLimits& limits);

// The prompt's pieces as the shards of `r` hold them, in order of position:
// PiecesInOrder (common/plan_pieces.h, the coordinator's rule too) of its
// spans and prefill_rounds, or, when `dealt` is false, of its spans alone
// (a plan in rounds: its shares as a contiguous plan's). Checked by
// ValidateShardRequest, not here.
std::vector<ShardPiece> PlanPieces(const ShardRequest& r, bool dealt = true);

// The tokens a validated shard holds: its prompt, plus max_new_tokens on the last shard.
int64_t ShardTokens(const ShardRequest& r);

// The bytes a validated shard reserves: what the coordinator reserved or
// what its tokens need, whichever is more; INT64_MAX when that overflows.
int64_t ShardMemoryBytes(const ShardRequest& r, int64_t kv_bytes_per_token, int64_t state_bytes_per_request);

// A split-KV query's numbers (beyond the lookup and the secret): q_len in
// [1, kMaxAttendQueryRows], q_position0 in [0, the served context].
absl::Status ValidateAttendKv(int64_t q_len, int64_t q_position0, const ShardLimits& limits);

}  // namespace tessera
