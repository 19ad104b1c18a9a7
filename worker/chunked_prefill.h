// Chunked prefill: a prompt longer than one pass's activation memory runs as
// consecutive forward passes over pieces of it, each continuing the sequence
// the previous one left in the state (conv tail, SSM state, K/V appended).
// That is the shard identity of DESIGN.md ("The same identity inside one
// worker"), so the result is the one-pass result up to fp32 reassociation.
//
// A shard of a context-parallel prefill exchanges conv halos, SSD summaries
// and ring K/V per layer with its peers, so its pieces are not cut here but
// planned with them: a plan in rounds (shard_context.h) runs one pass a round
// on every rank (ForwardInRounds), each no longer than one round's piece.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/model_config.h"
#include "worker/backend.h"
#include "worker/forward.h"
#include "worker/shard_context.h"
#include "worker/shard_state.h"

namespace tessera {

// The default piece never exceeds this: a piece of 64K tokens already keeps
// every matrix product at the GPU's rate, attention's total work does not
// depend on the cut, and a piece's fixed cost (one host synchronisation, a few
// hundred launches: milliseconds) is under 1% of its time. A bigger piece only
// holds more activation memory.
inline constexpr int64_t kMaxDefaultPrefillChunkTokens = 65536;
// The default where no pass limit is known (the CPU, whose activations are
// host memory): about 180 KB per token on the 8B shapes in fp32, so under
// 2 GB, and long past the rows where BLAS reaches its rate.
inline constexpr int64_t kUnlimitedDefaultPrefillChunkTokens = 8192;

// The piece size for `requested` tokens, or, for 0, the default: the longest
// pass `pass_limit_tokens` allows (Backend::PrefillTokenLimit; 0: no limit
// known, then kUnlimitedDefaultPrefillChunkTokens), at most
// kMaxDefaultPrefillChunkTokens, rounded down to a multiple of
// `ssd_chunk_tokens` so that every piece's SSD scan runs whole chunks.
// INVALID_ARGUMENT (a message to follow the flag's name) when `requested` is
// negative or more than the pass limit, or when the pass limit holds less
// than one SSD chunk.
absl::StatusOr<int64_t> ChoosePrefillChunkTokens(int64_t requested, int64_t pass_limit_tokens,
                                                 int64_t ssd_chunk_tokens);

// tessera::Forward over `ids` in consecutive pieces of at most `piece_tokens`,
// each on a stream of its own (a pass ends with its stream finished, so the
// next piece's stream sees all it wrote; a stream is per pass, as in
// Engine::Forward): logits rows of every piece with LogitsRows::kAll (in order),
// the last piece's with kLast, none with kNone. `ctx` must not be sharded.
// Its on_layer_done sees (piece · layers + layer, pieces · layers), so
// progress is monotonic over the whole prompt, and an error from it (e.g.
// CANCELLED) stops the pass before the next piece. On error the state is
// partly advanced and must be discarded, as after Forward. `before_piece`,
// when given, runs before each piece is queued (DecodeTurns: the decode step
// in flight finishes first).
absl::StatusOr<std::vector<float>> ForwardInPieces(Backend& backend, const ModelConfig& config, ShardState& state,
                                                   absl::Span<const int32_t> ids, LogitsRows rows,
                                                   const ShardContext& ctx, int64_t piece_tokens,
                                                   const std::function<void()>& before_piece = nullptr);

// A shard of a sharded plan (`ctx` sharded): one pass per round of the plan
// (ShardContext::round), each over this rank's piece of that round, on a
// stream of its own. Logits as ForwardInPieces' (kAll: every piece's rows,
// in order of position), progress monotonic over the rounds as there, and an
// error from on_layer_done stops the prefill before the next round.
absl::StatusOr<std::vector<float>> ForwardInRounds(Backend& backend, const ModelConfig& config, ShardState& state,
                                                   absl::Span<const int32_t> ids, LogitsRows rows,
                                                   const ShardContext& ctx);

// The same with the pieces ending at `ends` (relative to the first id,
// ascending, the last = ids.size()); after each piece, `after_piece` sees its
// end (relative) and may stop the pass with an error; `before_piece` as in
// ForwardInPieces. Engine::ForwardWithCuts cuts at prefix-cache block
// boundaries with it.
absl::StatusOr<std::vector<float>> ForwardAtEnds(Backend& backend, const ModelConfig& config, ShardState& state,
                                                 absl::Span<const int32_t> ids, LogitsRows rows,
                                                 const ShardContext& ctx, absl::Span<const int64_t> ends,
                                                 const std::function<absl::Status(int64_t end)>& after_piece,
                                                 const std::function<void()>& before_piece = nullptr);

}  // namespace tessera
