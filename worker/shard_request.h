// One shard of one request as the coordinator plans it (the worker-side,
// proto-free form of tessera.v1.RunShardRequest), and what a running shard
// reports back (ShardEvents): progress, prompt logits, the end of prefill,
// sampled tokens, the finish. services/worker_service.cc translates both.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "worker/sampler.h"

namespace tessera {

struct ShardSpan {
  std::string address;  // the worker that holds this shard
  int64_t begin = 0;    // global positions [begin, end) (a plan in rounds: its share, see ShardRequest)
  int64_t end = 0;
  // A load-balanced (zigzag) plan's second piece of this shard, global
  // positions [late_begin, late_end); empty (both 0) in a contiguous plan.
  int64_t late_begin = 0;
  int64_t late_end = 0;
  bool has_late() const { return late_end > late_begin; }
  int64_t tokens() const { return end - begin + late_end - late_begin; }
};

struct ShardRequest {
  std::string request_id;
  std::string secret;               // the request's secret: peers' blocks and queries must carry it
  int rank = 0;                     // this worker's shard
  std::vector<ShardSpan> shards;    // every shard, in order
  std::vector<int32_t> token_ids;   // this shard's prompt tokens (a zigzag or rounds shard's pieces, in order)
  // > 1: the prefill runs in this many rounds (RunShardRequest.prefill_rounds:
  // each shard's [begin, end) is then its share, dealt by common/striped_rounds.h).
  int prefill_rounds = 1;
  bool return_logits = false;       // stream every prompt logit and each sampled token's logits
  // Last shard only (as sent: validated, not defaulted). Its
  // prompt_token_ids are this shard's ids and the other shards'
  // (RunShardRequest.penalty_token_ids) when a repetition penalty applies;
  // its min_tokens_masked_ids the stop ids and EOS when min_tokens > 0.
  SamplingConfig sampling;
  int32_t max_new_tokens = 0;       // last shard only
  std::vector<int32_t> stop_token_ids;
  int64_t eos_token_id = -1;        // -1: none
  int64_t reserved_bytes = 0;       // memory the coordinator reserved for this shard
  std::chrono::milliseconds peer_timeout{10000};  // a peer that keeps this shard waiting longer fails it
  std::string nccl_group_id;        // empty: peers over gRPC
  std::string nccl_unique_id;       // the group's ncclUniqueId bytes
  // Prefix reuse (prefix_cache.h), for a request of one shard: states are
  // shared only under equal salts; bypass neither reuses nor keeps any.
  std::string cache_salt;
  bool bypass_prefix_cache = false;
  // Prefix reuse across shards (RunShardRequest.prefix_token_ids and
  // resume_from): the prompt before this shard, when sent; and, > 0, the end
  // of the prefix a resumed plan takes from its workers' caches.
  std::vector<int32_t> prefix_token_ids;
  int64_t resume_from = 0;
};

enum class FinishReason { kLength, kStopToken, kEos };

// What a running shard reports, in order: progress while it prefills, its
// prompt logits (return_logits), prefilled; then, on the last shard, a token
// at a time and finished. An error return (the caller went away) stops the shard.
class ShardEvents {
 public:
  virtual ~ShardEvents() = default;
  virtual absl::Status Progress(int64_t layers_done, int64_t layers_total, int64_t prompt_tokens, int shards) = 0;
  // (rows, vocab) fp32: this shard's rows.
  virtual absl::Status PromptLogits(absl::Span<const float> logits, int64_t vocab) = 0;
  // `cached_prompt_tokens`: the leading prompt tokens whose state came from
  // the prefix cache (PromptLogits then held only the rows after them).
  virtual absl::Status Prefilled(int64_t memory_bytes, int64_t cached_prompt_tokens) = 0;
  // `logits` (vocab) behind the choice, empty unless return_logits.
  virtual absl::Status Token(int32_t token, absl::Span<const float> logits) = 0;
  // The same with the token's log-probabilities (Sampler::SampleDetailed),
  // which travel when `sampled.has_logprobs`. By default only the token.
  virtual absl::Status TokenWithLogprobs(const SampledToken& sampled, absl::Span<const float> logits) {
    return Token(sampled.token, logits);
  }
  virtual absl::Status Finished(FinishReason reason, int32_t completion_tokens) = 0;
};

}  // namespace tessera
