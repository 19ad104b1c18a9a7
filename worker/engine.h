// What a worker runs the model with: a model config, a backend holding the
// weights (worker/cpu or worker/cuda), and the one layer loop (forward.h)
// over it. The worker's shard runner, the eval runner and the tests do not
// care which backend it is. A ShardState is one request's memory on one
// worker, made by and only usable with the engine that made it.
//
// A prompt on a state of its own runs in pieces of at most
// prefill_chunk_tokens() (chunked_prefill.h), so that activation memory does
// not cap its length; a shard of a context-parallel prefill runs in one pass
// per round of its plan (ForwardInRounds).
//
// Threads: Forward, DecodeStep, AttendStoredKv and NewState may run
// concurrently for different states; calls on one state must be serialized
// by the caller.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/model_config.h"
#include "transport/peer_transport.h"
#include "worker/backend.h"
#include "worker/decode_graphs.h"
#include "worker/decode_turns.h"
#include "worker/forward.h"
#include "worker/shard_context.h"
#include "worker/shard_state.h"

namespace tessera {

class Engine {
 public:
  Engine(ModelConfig config, std::unique_ptr<Backend> backend)
      : config_(std::move(config)), backend_(std::move(backend)) {}

  const ModelConfig& config() const { return config_; }
  // "cpu" or "cuda".
  std::string backend() const { return backend_->name(); }
  // One line for logs: backend, precision, device.
  std::string Describe() const { return backend_->Describe(); }
  // The GPU it computes on ("GPU-<uuid>"); empty on the CPU.
  std::string device_id() const { return backend_->device_id(); }

  // K/V bytes one token costs across all attention layers, and conv + SSM
  // state bytes of one request, in this engine's storage types.
  int64_t KvBytesPerToken() const;
  int64_t StateBytesPerRequest() const;
  // Backend::DefaultMemoryBudgetBytes and PrefillTokenLimit.
  int64_t DefaultMemoryBudgetBytes() const { return backend_->DefaultMemoryBudgetBytes(); }
  int64_t PrefillTokenLimit(int64_t memory_budget_bytes) const {
    return backend_->PrefillTokenLimit(memory_budget_bytes);
  }

  // The longest piece an unsharded Forward runs in; 0 (the default): one
  // pass, however long. Set it before the engine serves any call.
  int64_t prefill_chunk_tokens() const { return prefill_chunk_tokens_; }
  void set_prefill_chunk_tokens(int64_t tokens) { prefill_chunk_tokens_ = tokens; }
  // The longest piece an unsharded Forward runs in when it starts while
  // requests are decoding on this engine, each piece after the decode step
  // in flight (decode_turns.h); 0: no turns. Rounded down to whole SSD chunks
  // (at least one), so a piece cut changes logits only by fp32
  // reassociation. Set it before the engine serves any call.
  int64_t prefill_budget_tokens() const { return prefill_budget_tokens_; }
  void set_prefill_budget_tokens(int64_t tokens);

  // Fresh state for a shard starting at global position `begin` (0: a whole
  // sequence); `capacity_tokens` is a hint of how many tokens it will hold.
  absl::StatusOr<std::unique_ptr<ShardState>> NewState(int64_t begin, int64_t capacity_tokens);

  // tessera::Forward (forward.h) on a stream of its own; in pieces
  // (ForwardInPieces) when `shard` is not sharded and `ids` is longer than
  // prefill_chunk_tokens(); in rounds (ForwardInRounds) when `shard` is a
  // sharded plan of several.
  absl::StatusOr<std::vector<float>> Forward(ShardState& state, absl::Span<const int32_t> ids, LogitsRows rows,
                                             const ShardContext& shard = {});

  // tessera::Forward over `ids` in pieces that end at each of `cuts` (global
  // positions, ascending, inside the span of `ids`) and wherever a piece
  // would pass prefill_chunk_tokens(); after each piece that ends at a cut,
  // `at_cut` sees the state there (a prefix-cache block is taken from it).
  // `shard` must not be sharded. Logits as Forward's.
  absl::StatusOr<std::vector<float>> ForwardWithCuts(ShardState& state, absl::Span<const int32_t> ids,
                                                     LogitsRows rows, const ShardContext& shard,
                                                     absl::Span<const int64_t> cuts,
                                                     const std::function<absl::Status(int64_t position)>& at_cut);

  // ShardState::AppendFrom on a stream of its own.
  absl::Status AppendState(ShardState& to, const ShardState& from, int64_t position, int64_t rows, bool copy_mamba);

  // tessera::DecodeStep (forward.h) on a stream of its own: one decode step
  // of several requests in one pass. The caller serializes it with every
  // other call on those states.
  absl::StatusOr<DecodeStepResult> DecodeStep(absl::Span<const DecodeRow> rows);
  // Whether DecodeStep runs local rows on CUDA graphs (decode_graphs.h; on by
  // default where the backend has graphs, off with TESSERA_DECODE_GRAPHS=0).
  bool decode_graphs() const { return decode_graphs_.enabled(); }
  void set_decode_graphs(bool on) { decode_graphs_.set_enabled(on); }
  // Batch-size buckets whose graph is captured, and the first capture error
  // (a bucket whose capture failed runs eagerly).
  int64_t decode_graphs_captured() { return decode_graphs_.captured(); }
  absl::Status decode_graph_capture_error() { return decode_graphs_.first_capture_error(); }

  // Runs a `tokens`-token prompt and a few decode steps on a state it then
  // frees, before the engine serves: the first request otherwise pays the
  // one-time costs (kernels loaded on first launch, cuBLAS handles and
  // workspaces per stream, the memory pools' growth, the one-row decode
  // graph's capture). The prefix cache never sees it.
  absl::Status WarmUp(int64_t tokens);

  // tessera::AttendStoredKv (forward.h) on a stream of its own.
  absl::StatusOr<AttentionPartial> AttendStoredKv(const ShardState& state, int64_t attention_slot,
                                                  absl::Span<const float> q, int64_t q_len, int64_t q_position0);

 private:
  // How an unsharded Forward is cut: pieces of at most `longest` tokens (0:
  // one pass), and whether each piece first waits for the decode step in
  // flight. The chunk size, or the budget while requests decode
  // (decode_turns.h); a sharded pass is never cut.
  struct PieceRule {
    int64_t longest = 0;
    bool take_turns = false;
  };
  PieceRule PiecesFor(const ShardContext& shard) const;

  ModelConfig config_;
  std::unique_ptr<Backend> backend_;
  int64_t prefill_chunk_tokens_ = 0;
  int64_t prefill_budget_tokens_ = 0;
  DecodeTurns decode_turns_;
  DecodeGraphs decode_graphs_;  // declared after backend_: its buffers go first
};

}  // namespace tessera
