// One check per field, in the order of RunShardRequest. Written so that NaN
// fails (negated ranges) and no sum or product below can overflow: every
// position is bounded before it is added.
#include "worker/shard_validation.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/plan_pieces.h"
#include "common/striped_rounds.h"
#include "worker/network_limits.h"

namespace tessera {
namespace {

int64_t MaxPosition(const ShardLimits& limits) {
  return limits.max_context_tokens > 0 ? limits.max_context_tokens : int64_t{1} << 40;
}

int64_t SatAdd(int64_t a, int64_t b) {
  int64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? INT64_MAX : sum;
}

int64_t SatMul(int64_t a, int64_t b) {
  int64_t product = 0;
  return __builtin_mul_overflow(a, b, &product) ? INT64_MAX : product;
}

// The fields beyond temperature, top_k and top_p, with the same limits as the
// coordinator's checks (coordinator/request_validation.h).
absl::Status ValidateSamplingExtras(const ShardRequest& r, const ModelConfig& config, const ShardLimits& options) {
  const SamplingConfig& s = r.sampling;
  if (!(s.repetition_penalty > 0.0f && s.repetition_penalty <= kMaxRepetitionPenalty)) {
    return absl::InvalidArgumentError(absl::StrCat("repetition_penalty must be 0 (none) or in (0, ",
                                                   kMaxRepetitionPenalty, "]. Given: ", s.repetition_penalty));
  }
  for (const auto& [name, value] : {std::pair<const char*, float>{"presence_penalty", s.presence_penalty},
                                    std::pair<const char*, float>{"frequency_penalty", s.frequency_penalty}}) {
    if (!(value >= -kMaxPresenceFrequencyPenalty && value <= kMaxPresenceFrequencyPenalty)) {
      return absl::InvalidArgumentError(absl::StrCat(name, " must be in [-", kMaxPresenceFrequencyPenalty, ", ",
                                                     kMaxPresenceFrequencyPenalty, "]. Given: ", value));
    }
  }
  if (!(s.min_p >= 0.0f && s.min_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("min_p must be in [0, 1]. Given: ", s.min_p));
  }
  if (static_cast<int64_t>(s.logit_bias.size()) > kMaxLogitBiasEntries) {
    return absl::InvalidArgumentError(absl::StrCat("logit_bias must have at most ", kMaxLogitBiasEntries,
                                                   " entries. Given: ", s.logit_bias.size()));
  }
  for (const auto& [id, bias] : s.logit_bias) {
    if (id < 0 || id >= config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("logit_bias keys must be in [0, ", config.vocab_size, "). Given: ", id));
    }
    if (!(bias >= -kMaxLogitBias && bias <= kMaxLogitBias)) {
      return absl::InvalidArgumentError(absl::StrCat("logit_bias[", id, "] must be in [-", kMaxLogitBias, ", ",
                                                     kMaxLogitBias, "]. Given: ", bias));
    }
  }
  if (s.logprobs < -1 || s.logprobs > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("logprobs must be in [0, ", kMaxTopLogprobs, "]. Given: ", s.logprobs));
  }
  if (s.min_tokens < 0 || s.min_tokens > r.max_new_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("min_tokens must be in [0, ", r.max_new_tokens,
                                                   "] (max_new_tokens). Given: ", s.min_tokens));
  }
  const int64_t max_prompt_ids = MaxPosition(options);
  if (static_cast<int64_t>(s.prompt_token_ids.size()) > max_prompt_ids) {
    return absl::InvalidArgumentError(absl::StrCat("penalty_token_ids must have at most ", max_prompt_ids,
                                                   " ids (this worker's served context). Given: ",
                                                   s.prompt_token_ids.size()));
  }
  for (size_t i = 0; i < s.prompt_token_ids.size(); ++i) {
    if (s.prompt_token_ids[i] < 0 || s.prompt_token_ids[i] >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("penalty_token_ids must be in [0, ", config.vocab_size,
                                                     "). Given: ", s.prompt_token_ids[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateShardRequest(const ShardRequest& r, const ModelConfig& config, const ShardLimits& options) {
  if (r.request_id.empty() || static_cast<int64_t>(r.request_id.size()) > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("request_id must have 1 to ", kMaxRequestIdBytes,
                                                   " bytes. Given: ", r.request_id.size()));
  }
  if (static_cast<int64_t>(r.secret.size()) < kMinRequestSecretBytes ||
      static_cast<int64_t>(r.secret.size()) > kMaxRequestSecretBytes) {
    return absl::InvalidArgumentError(absl::StrCat("request_secret must have ", kMinRequestSecretBytes, " to ",
                                                   kMaxRequestSecretBytes, " bytes. Given: ", r.secret.size()));
  }
  if (static_cast<int64_t>(r.cache_salt.size()) > kMaxShardCacheSaltBytes) {
    return absl::InvalidArgumentError(absl::StrCat("cache_salt must have at most ", kMaxShardCacheSaltBytes,
                                                   " bytes. Given: ", r.cache_salt.size()));
  }
  const int64_t shards = static_cast<int64_t>(r.shards.size());
  if (shards < 1 || shards > kMaxShardsPerRequest) {
    return absl::InvalidArgumentError(
        absl::StrCat("RunShard needs 1 to ", kMaxShardsPerRequest, " shards. Given: ", shards));
  }
  if (r.rank < 0 || r.rank >= shards) {
    return absl::InvalidArgumentError(absl::StrCat("rank must be in [0, ", shards, "). Given: ", r.rank));
  }
  // No position past the served context (or 2^40 when none is set), so that
  // no sum of positions and counts below can overflow.
  const int64_t max_position = MaxPosition(options);
  const bool zigzag = r.shards[0].has_late();
  const int rounds = r.prefill_rounds;
  if (rounds < 1 || rounds > kMaxPrefillRounds) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefill_rounds must be in [1, ", kMaxPrefillRounds, "] (0: 1). Given: ", rounds));
  }
  if (rounds > 1 && (zigzag || shards < 2)) {
    return absl::InvalidArgumentError(absl::StrCat("prefill_rounds ", rounds, " needs a contiguous plan of several "
                                                   "shards. Given: ", shards, zigzag ? " shards dealt zigzag" : " shard"));
  }
  for (int64_t i = 0; i < shards; ++i) {
    const ShardSpan& s = r.shards[i];
    if (s.has_late() != zigzag || (!zigzag && (s.late_begin != 0 || s.late_end != 0))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shard ", i, " has a second piece [", s.late_begin, ", ", s.late_end, ") but shard 0 ",
          zigzag ? "has one" : "has none", ": every shard of a plan holds one piece, or every shard two (zigzag)"));
    }
    if (s.address.empty() || static_cast<int64_t>(s.address.size()) > kMaxAddressBytes) {
      return absl::InvalidArgumentError(absl::StrCat("shard ", i, "'s address must have 1 to ", kMaxAddressBytes,
                                                     " bytes. Given: ", s.address.size()));
    }
  }
  // The spans first (a plan in rounds deals its pieces from them).
  std::vector<ShardPiece> pieces = PlanPieces(r, /*dealt=*/false);
  int64_t expected_begin = 0;
  for (size_t k = 0; k < pieces.size(); ++k) {
    const ShardPiece& p = pieces[k];
    if (p.begin != expected_begin || p.end <= p.begin) {
      if (!zigzag) {
        return absl::InvalidArgumentError(absl::StrCat("shard ", k, " covers [", p.begin, ", ", p.end,
                                                       "); shards must be non-empty and contiguous from 0"));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "piece ", k, " (of shard ", p.rank, ") covers [", p.begin, ", ", p.end,
          "); a zigzag plan's pieces (shard r holds pieces W-1-r and W+r) must be non-empty and contiguous from 0"));
    }
    if (p.end > max_position) {
      return absl::InvalidArgumentError(absl::StrCat("shard ", p.rank, " ends at ", p.end, "; positions must be <= ",
                                                     max_position, " (this worker's served context)"));
    }
    expected_begin = p.end;
  }
  for (int64_t i = 0; i < shards && rounds > 1; ++i) {
    if (r.shards[i].end - r.shards[i].begin < rounds) {
      return absl::InvalidArgumentError(absl::StrCat("shard ", i, " holds ", r.shards[i].end - r.shards[i].begin,
                                                     " tokens, fewer than its ", rounds,
                                                     " prefill rounds (one piece a round)"));
    }
  }
  pieces = PlanPieces(r);
  const int64_t prompt_end = expected_begin;
  const bool last = r.rank == shards - 1;
  const int32_t min_new = last ? 1 : 0;
  if (r.max_new_tokens < min_new || r.max_new_tokens > options.max_new_tokens_limit) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens must be in [", min_new, ", ",
                                                   options.max_new_tokens_limit, "] (this worker's limit). Given: ",
                                                   r.max_new_tokens));
  }
  const int64_t total = prompt_end + r.max_new_tokens;
  if (options.max_context_tokens > 0 && total > options.max_context_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("prompt + max_new_tokens must be <= ", options.max_context_tokens,
                                                   " (this worker's served context). Given: ", prompt_end,
                                                   " + ", r.max_new_tokens));
  }
  const ShardSpan& mine = r.shards[r.rank];
  if (static_cast<int64_t>(r.token_ids.size()) != mine.tokens()) {
    return absl::InvalidArgumentError(absl::StrCat("shard ", r.rank, " covers ", mine.tokens(),
                                                   " tokens but ", r.token_ids.size(), " token ids were sent"));
  }
  for (size_t i = 0; i < r.token_ids.size(); ++i) {
    if (r.token_ids[i] < 0 || r.token_ids[i] >= config.vocab_size) {
      int64_t position = static_cast<int64_t>(i);  // walked over this shard's pieces, in order
      for (const ShardPiece& p : pieces) {
        if (p.rank != r.rank) continue;
        if (position < p.len()) {
          position += p.begin;
          break;
        }
        position -= p.len();
      }
      return absl::InvalidArgumentError(absl::StrCat("token id at position ", position,
                                                     " must be < vocab size ", config.vocab_size,
                                                     ". Given: ", r.token_ids[i]));
    }
  }
  if ((zigzag || rounds > 1) && (!r.prefix_token_ids.empty() || r.resume_from != 0)) {
    return absl::InvalidArgumentError(absl::StrCat("a ", zigzag ? "zigzag plan" : "plan in rounds",
                                                   " neither keeps nor resumes prefixes: "
                                                   "prefix_token_ids and resume_from must be empty"));
  }
  if (!r.prefix_token_ids.empty() && static_cast<int64_t>(r.prefix_token_ids.size()) != mine.begin) {
    return absl::InvalidArgumentError(absl::StrCat("prefix_token_ids must be the ", mine.begin,
                                                   " tokens before shard ", r.rank, ". Given: ",
                                                   r.prefix_token_ids.size()));
  }
  for (size_t i = 0; i < r.prefix_token_ids.size(); ++i) {
    if (r.prefix_token_ids[i] < 0 || r.prefix_token_ids[i] >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prefix token id at position ", i, " must be < vocab size ",
                                                     config.vocab_size, ". Given: ", r.prefix_token_ids[i]));
    }
  }
  if (r.resume_from != 0) {
    // A resumed plan: every shard but the last inside the prefix, the last across its end.
    const bool inside = last ? mine.begin < r.resume_from && r.resume_from < mine.end : mine.end <= r.resume_from;
    if (!inside || static_cast<int64_t>(r.prefix_token_ids.size()) != mine.begin) {
      return absl::InvalidArgumentError(absl::StrCat("resume_from ", r.resume_from, " does not fit shard ", r.rank,
                                                     " of ", shards, " covering [", mine.begin, ", ", mine.end,
                                                     ") with ", r.prefix_token_ids.size(), " prefix tokens"));
    }
  }
  if (static_cast<int64_t>(r.stop_token_ids.size()) > kMaxStopTokenIds) {
    return absl::InvalidArgumentError(absl::StrCat("stop_token_ids must have at most ", kMaxStopTokenIds,
                                                   " ids. Given: ", r.stop_token_ids.size()));
  }
  for (size_t i = 0; i < r.stop_token_ids.size(); ++i) {
    if (r.stop_token_ids[i] < 0 || r.stop_token_ids[i] >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("stop_token_ids[", i, "] must be in [0, ", config.vocab_size,
                                                     "). Given: ", r.stop_token_ids[i]));
    }
  }
  if (r.eos_token_id < -1) {
    return absl::InvalidArgumentError(absl::StrCat("eos_token_id must be >= -1. Given: ", r.eos_token_id));
  }
  // Written as negated ranges so that NaN fails too.
  if (!(std::isfinite(r.sampling.temperature) && r.sampling.temperature >= 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be finite and >= 0. Given: ", r.sampling.temperature));
  }
  if (!(r.sampling.top_p >= 0.0f && r.sampling.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in [0, 1]. Given: ", r.sampling.top_p));
  }
  if (r.sampling.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0. Given: ", r.sampling.top_k));
  }
  if (absl::Status s = ValidateSamplingExtras(r, config, options); !s.ok()) return s;
  if (r.reserved_bytes < 0 || r.reserved_bytes > options.memory_budget_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("reserved_bytes must be in [0, ", options.memory_budget_bytes,
                                                   "] (this worker's budget). Given: ", r.reserved_bytes));
  }
  if (r.peer_timeout.count() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("peer_timeout_ms must be >= 0. Given: ", r.peer_timeout.count()));
  }
  if (!r.nccl_group_id.empty() &&
      (static_cast<int64_t>(r.nccl_group_id.size()) > kMaxRequestIdBytes || r.nccl_unique_id.size() != 128)) {
    return absl::InvalidArgumentError(absl::StrCat("an NCCL group needs an id of at most ", kMaxRequestIdBytes,
                                                   " bytes and a unique id of 128 bytes. Given: ",
                                                   r.nccl_group_id.size(), " and ", r.nccl_unique_id.size()));
  }
  return absl::OkStatus();
}

std::vector<ShardPiece> PlanPieces(const ShardRequest& r, bool dealt) {
  std::vector<PlanSpan> spans;  // (W)
  for (const ShardSpan& s : r.shards) spans.push_back({s.begin, s.end, s.late_begin, s.late_end});
  return PiecesInOrder(spans, dealt ? r.prefill_rounds : 1);
}

int64_t ShardTokens(const ShardRequest& r) {
  const bool last = r.rank == static_cast<int>(r.shards.size()) - 1;
  return static_cast<int64_t>(r.token_ids.size()) + (last ? std::max(0, r.max_new_tokens) : 0);
}

int64_t ShardMemoryBytes(const ShardRequest& r, int64_t kv_bytes_per_token, int64_t state_bytes_per_request) {
  return std::max<int64_t>(r.reserved_bytes, SatAdd(SatMul(ShardTokens(r), std::max<int64_t>(0, kv_bytes_per_token)),
                                                    std::max<int64_t>(0, state_bytes_per_request)));
}

absl::Status ValidateAttendKv(int64_t q_len, int64_t q_position0, const ShardLimits& limits) {
  if (q_len < 1 || q_len > kMaxAttendQueryRows) {
    return absl::InvalidArgumentError(absl::StrCat("q_len must be in [1, ", kMaxAttendQueryRows, "]. Given: ", q_len));
  }
  const int64_t max_position = MaxPosition(limits);
  if (q_position0 < 0 || q_position0 > max_position) {
    return absl::InvalidArgumentError(
        absl::StrCat("q_position0 must be in [0, ", max_position, "]. Given: ", q_position0));
  }
  return absl::OkStatus();
}

}  // namespace tessera
