// One prompt run the way a cluster runs it, inside one process: W shards as
// threads over one Engine, exchanging through an in-process peer group, then
// greedy decode on the last shard with split-KV attention over the others'
// K/V (answered in process as AttendKv would be). What the context-parallel
// tests of every backend compare with the whole-sequence run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tools/reference_eval.h"
#include "transport/in_process_transport.h"
#include "worker/engine.h"

namespace tessera::testing {

// A sharded prefill as it ran: every rank's state, transport and result.
struct ShardedPrefill {
  std::vector<std::vector<ShardPiece>> held;                     // (ranks): each rank's pieces, in order
  std::vector<std::unique_ptr<ShardState>> states;               // (ranks)
  std::vector<std::unique_ptr<InProcessTransport>> transports;   // (ranks): split-KV answered by `states`
  std::vector<absl::StatusOr<std::vector<float>>> logits;        // (ranks): its pieces' rows, in order
};

// The prefill of `prompt` dealt as `pieces` (any dealing: contiguous, zigzag,
// in rounds), each rank's Engine::Forward on a thread of its own, its state
// sized for `extra_tokens` more; `progress(rank)`, when given, is that rank's
// ShardContext::on_layer_done.
using ProgressOfRank = std::function<std::function<absl::Status(int64_t, int64_t)>(int rank)>;
std::unique_ptr<ShardedPrefill> RunShardedPrefill(Engine& engine, absl::Span<const int32_t> prompt,
                                                  const std::vector<ShardPiece>& pieces, int64_t extra_tokens,
                                                  LogitsRows rows, const ProgressOfRank& progress = nullptr);

// `bounds` (W + 1): shard r holds prompt[bounds[r], bounds[r+1]). Returns the
// prompt logits of all shards in order, `steps` greedy tokens and their logits.
absl::StatusOr<GreedyRun> RunShardedGreedy(Engine& engine, absl::Span<const int32_t> prompt,
                                           const std::vector<int64_t>& bounds, int steps);
// The same over any dealing of the prompt's pieces to ranks (shard_context.h:
// contiguous or zigzag); the prompt logits come back in order of position and
// decode runs on the rank that holds the prompt's end.
absl::StatusOr<GreedyRun> RunShardedGreedy(Engine& engine, absl::Span<const int32_t> prompt,
                                           const std::vector<ShardPiece>& pieces, int steps);

}  // namespace tessera::testing
