// What a worker runs the model on: the CPU reference engine or the CUDA
// engine, behind one interface, so the worker service, the eval runner and
// the tests do not care which. An Engine owns the weights in the form its
// backend computes on; a ShardState is one request's memory on one worker
// (K/V of attention layers, conv/SSM states of Mamba layers), made by and only
// usable with the engine that made it.
//
// Threads: Forward, AttendStoredKv and NewState may run concurrently for
// different states; calls on one state must be serialized by the caller.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/model_config.h"
#include "worker/shard_context.h"

namespace tessera {

enum class LogitsRows { kAll, kLast, kNone };

class ShardState {
 public:
  virtual ~ShardState() = default;
  // Global position of the next token this state continues from.
  virtual int64_t num_tokens() const = 0;
  // Bytes held by K/V and states now (what a memory budget counts).
  virtual int64_t MemoryBytes() const = 0;
  // Frees the conv/SSM states (a shard that only keeps K/V for split-KV decode).
  virtual void DropMambaStates() = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual const ModelConfig& config() const = 0;
  // "cpu" or "cuda".
  virtual std::string backend() const = 0;
  // One line for logs: backend, precision, device.
  virtual std::string Describe() const = 0;

  // K/V bytes one token costs across all attention layers, and conv + SSM
  // state bytes of one request, in this engine's storage types.
  virtual int64_t KvBytesPerToken() const = 0;
  virtual int64_t StateBytesPerRequest() const = 0;
  // The K/V + state budget a worker takes when not told: 1 GiB on the CPU;
  // on a GPU half the device memory free after the weights (the other half
  // stays for a long prefill's activations and the CUDA libraries).
  virtual int64_t DefaultMemoryBudgetBytes() const = 0;
  // The longest shard one Forward can prefill when `memory_budget_bytes` are
  // set aside for K/V and states: the GPU memory left for activations over
  // their bytes per token. 0: no limit known (the CPU engine).
  virtual int64_t PrefillTokenLimit(int64_t memory_budget_bytes) const = 0;

  // Fresh state for a shard starting at global position `begin` (0: a whole
  // sequence); `capacity_tokens` is a hint of how many tokens it will hold.
  virtual absl::StatusOr<std::unique_ptr<ShardState>> NewState(int64_t begin, int64_t capacity_tokens) = 0;

  // Runs `ids` (global positions state.num_tokens(), ...) through the model,
  // continuing `state`. Returns logits (rows, vocab): every row, the last, or
  // none. With a sharded context `ids` is this worker's shard of a fresh
  // prompt; with remote_kv attention also covers K/V held elsewhere. On error
  // the state is partly advanced and must be discarded.
  virtual absl::StatusOr<std::vector<float>> Forward(ShardState& state, absl::Span<const int32_t> ids,
                                                     LogitsRows rows, const ShardContext& shard = {}) = 0;

  // Split-KV decode, the answering side: attention of `q` (q_len rows at
  // global positions q_position0, ...; (q_len, Hq, D) fp32) over the K/V this
  // state holds for attention layer `attention_slot`.
  virtual absl::StatusOr<AttentionPartial> AttendStoredKv(const ShardState& state, int64_t attention_slot,
                                                          absl::Span<const float> q, int64_t q_len,
                                                          int64_t q_position0) = 0;
};

}  // namespace tessera
