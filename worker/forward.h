// The model's forward pass, written once for every backend: a loop over the
// model's blocks that switches on the block kind (Mamba-2 mixer, attention,
// MLP) and runs each step as an op of the backend (backend.h), with the
// exchanges that context parallelism needs (DESIGN.md): the conv halo and
// the SSD summaries all-gathered, K/V blocks around the ring, split-KV
// partials merged by their log-sum-exp. The same call serves prefill (many
// tokens) and decode (one token): it continues the sequence held in `state`,
// appending K/V and advancing the conv/SSM states. A batched decode step
// (DecodeStep) is the same loop over several requests' rows at once: every
// matrix product, norm and MoE runs once over all rows (the weights are read
// once per step), and only what is a request's own (its conv/SSM update, its
// K/V append and attention, its split-KV queries) runs per request.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/model_config.h"
#include "transport/peer_transport.h"
#include "worker/backend.h"
#include "worker/shard_context.h"
#include "worker/shard_state.h"

namespace tessera {

class DecodeGraphs;

enum class LogitsRows { kAll, kLast, kNone };

// Runs `ids` (global positions state.num_tokens(), ...) through the model on
// `ops`. Returns logits (rows, vocab) fp32: every row, the last, or none.
// With a sharded context `ids` is this worker's shard of a fresh prompt; with
// remote_kv attention also covers K/V held by the other ranks. On error the
// state is partly advanced and must be discarded.
absl::StatusOr<std::vector<float>> Forward(Backend& backend, OpStream& ops, const ModelConfig& config,
                                           ShardState& state, absl::Span<const int32_t> ids, LogitsRows rows,
                                           const ShardContext& ctx = {});

// One request's token in a batched decode step.
struct DecodeRow {
  ShardState* state = nullptr;        // the request's memory on this worker, with its Mamba states
  int32_t token = 0;                  // runs at global position state->num_tokens()
  const ShardContext* ctx = nullptr;  // remote_kv: split-KV over the other ranks of ctx->peers; null: none
};

struct DecodeStepResult {
  std::vector<float> logits;         // (rows, vocab) fp32, in the order of the rows
  std::vector<absl::Status> status;  // (rows): not OK for a row whose own part failed
};

// One decode step of every row in one pass. Rows must hold distinct states,
// none sharded for prefill and none reporting progress. A row whose own part
// fails (its K/V could not grow, its split-KV query failed) gets that status
// in DecodeStepResult::status: its state must be discarded, its logits row
// is meaningless, the other rows are unharmed. An error return means a
// shared op failed: every row's state is partly advanced and must be
// discarded.
//
// With `graphs` (on a backend that captures them), a step whose rows are all
// local (no split-KV peers) runs on the graph of its batch-size bucket
// (decode_graphs.h): the same ops as the eager step, so the same logits bit
// for bit when the rows fill the bucket, and within the GEMMs' reassociation
// when padding rows fill it (a product of 4 rows may block its sums unlike
// one of 3). A step with any row querying peers runs eagerly, all of it.
absl::StatusOr<DecodeStepResult> DecodeStep(Backend& backend, OpStream& ops, const ModelConfig& config,
                                            absl::Span<const DecodeRow> rows, DecodeGraphs* graphs = nullptr);

// Split-KV decode, the answering side: attention of `q` (q_len rows at global
// positions q_position0, ...; (q_len, Hq, D) fp32) over the K/V `state` holds
// for attention layer `attention_slot`.
absl::StatusOr<AttentionPartial> AttendStoredKv(Backend& backend, OpStream& ops, const ModelConfig& config,
                                                const ShardState& state, int64_t attention_slot,
                                                absl::Span<const float> q, int64_t q_len, int64_t q_position0);

}  // namespace tessera
