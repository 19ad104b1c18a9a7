// One request's memory on one worker, on every backend: per attention layer a
// K/V cache in the backend's matrix type that grows as tokens are appended,
// per Mamba layer the conv window and SSM state in fp32 (states accumulate
// over the whole sequence, so they are never rounded to bf16). The forward
// pass reads and appends to it; whoever owns the request frees it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "worker/backend.h"
#include "worker/tensor.h"

namespace tessera {

struct KvCache {
  Buffer k, v;          // (capacity, Hkv·D) each, the backend's matrix type; RoPE applied to K
  int64_t tokens = 0;   // rows in use
  int64_t capacity() const { return k.view().rows; }
  Tensor keys() const { return k.view().Rows(0, tokens); }    // (tokens, Hkv·D)
  Tensor values() const { return v.view().Rows(0, tokens); }  // (tokens, Hkv·D)
};

struct MambaState {
  Buffer conv;  // (K-1, C) fp32: the last pre-conv xBC rows, oldest first
  Buffer ssm;   // (H, P·N) fp32
};

class ShardState {
 public:
  // Zeroed conv/SSM states and empty K/V for every layer of `config`, for a
  // shard starting at global position `begin` (0: a whole sequence);
  // `capacity_tokens` is how many tokens it is expected to hold.
  static absl::StatusOr<std::unique_ptr<ShardState>> Make(Backend& backend, const ModelConfig& config, int64_t begin,
                                                         int64_t capacity_tokens);

  // Global position of the next token this state continues from.
  int64_t num_tokens() const { return num_tokens_; }
  // Global position of the first K/V row held here (a shard's start).
  int64_t kv_begin() const { return kv_begin_; }
  // Bytes held by K/V and states now (what a memory budget counts).
  int64_t MemoryBytes() const;
  // Frees the conv/SSM states (a shard that only keeps K/V for split-KV decode).
  void DropMambaStates() { mamba.clear(); }
  bool has_mamba_states() const { return mamba.size() == mamba_layers_; }

  // Makes room for `more` rows in every K/V cache: capacity at least doubles,
  // rows in use are copied on `ops`, which then finishes.
  absl::Status ReserveKv(OpStream& ops, int64_t more);
  void Advance(int64_t tokens) { num_tokens_ += tokens; }

  // Continues this state with `rows` tokens of `from`: appends its K/V rows
  // at global positions [position, position + rows) (which `from` holds and
  // which must start at num_tokens()) and, with `copy_mamba`, takes its
  // conv/SSM states (which must be the states at position + rows). How a
  // prefix-cache block is made from a request (prefix_cache.h) and how a
  // request resumes from cached blocks. The copies run on `ops`, which then
  // finishes (so `from` may go).
  absl::Status AppendFrom(OpStream& ops, const ShardState& from, int64_t position, int64_t rows, bool copy_mamba);

  std::vector<KvCache> attention;  // by state slot
  std::vector<MambaState> mamba;   // by state slot; empty once dropped

 private:
  ShardState(Backend& backend, int64_t begin, int64_t capacity_hint, int64_t kv_width, size_t mamba_layers)
      : backend_(backend), num_tokens_(begin), kv_begin_(begin), capacity_hint_(capacity_hint),
        kv_width_(kv_width), mamba_layers_(mamba_layers) {}

  Backend& backend_;
  int64_t num_tokens_;
  int64_t kv_begin_;
  int64_t capacity_hint_;  // tokens the request is expected to reach here
  int64_t kv_width_;       // Hkv·D
  size_t mamba_layers_;
};

// K/V bytes one token costs across all attention layers, at
// `kv_element_bytes` per stored element (4 for fp32, 2 for bf16).
int64_t KvBytesPerToken(const ModelConfig& config, int64_t kv_element_bytes);
// Conv + SSM state bytes of one request (fp32 states on every backend).
int64_t StateBytesPerRequest(const ModelConfig& config);

}  // namespace tessera
