// The model's forward pass on the CPU backend: a loop over residual blocks
// that switches on the block kind (Mamba-2 mixer, attention, MLP). The same
// call serves prefill (many tokens) and decode (one token): it continues the
// sequence held in `state`, appending KV and advancing the conv/SSM states.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/engine.h"
#include "model/model_weights.h"
#include "worker/sequence_state.h"
#include "worker/shard_context.h"

namespace tessera {

// Runs `ids` (the tokens at global positions state.num_tokens, ...) through
// the model. Returns logits (rows, vocab): every row, the last row, or none.
// With a sharded context, `ids` is this worker's shard of a fresh prompt and
// the call exchanges conv tails, SSD summaries and K/V blocks with its peers;
// with remote_kv, attention also covers K/V held by other workers.
// On error the state is partly advanced and must be discarded.
absl::StatusOr<std::vector<float>> ForwardCpu(const ModelWeights& weights, SequenceState& state,
                                              absl::Span<const int32_t> ids, LogitsRows rows,
                                              const ShardContext& shard = {});

}  // namespace tessera

namespace tessera {

// Split-KV decode, the answering side: attention of `q` (q_len rows at global
// positions q_position0, ...) over the K/V this state holds for attention
// layer `attention_slot`. Returns this worker's partial (out, lse).
absl::StatusOr<AttentionPartial> AttendStoredKv(const ModelConfig& config, const SequenceState& state,
                                                int64_t attention_slot, absl::Span<const float> q, int64_t q_len,
                                                int64_t q_position0);

}  // namespace tessera
