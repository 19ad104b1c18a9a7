// One request's memory on one worker: the KV of its attention layers and the
// conv/SSM states of its Mamba layers. The forward pass reads and appends to
// it; whoever owns the request frees it when the request ends.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model_config.h"

namespace tessera {

struct MambaLayerState {
  std::vector<float> conv;  // (K-1, conv_channels): the last pre-conv xBC rows, oldest first
  std::vector<float> ssm;   // (H, P, N) fp32
};

struct AttentionLayerKv {
  std::vector<float> k;  // (tokens, Hkv, D), RoPE applied
  std::vector<float> v;  // (tokens, Hkv, D)
};

struct SequenceState {
  int64_t num_tokens = 0;   // global position of the next token this state continues from
  int64_t kv_begin = 0;     // global position of the first K/V row held here (a shard's start)
  std::vector<MambaLayerState> mamba;   // one per Mamba block, by state_slot
  std::vector<AttentionLayerKv> attention;  // one per attention block, by state_slot

  // Zeroed conv/SSM states and empty KV for every layer of `config`.
  static SequenceState ForModel(const ModelConfig& config);
  // The same for a shard that starts at global position `begin`.
  static SequenceState ForShard(const ModelConfig& config, int64_t begin);

  // Bytes held by KV and states (what a memory budget counts).
  int64_t MemoryBytes() const;
};

// K/V bytes one token costs across all attention layers, at
// `kv_element_bytes` per stored element (4 for fp32, 2 for bf16).
int64_t KvBytesPerToken(const ModelConfig& config, int64_t kv_element_bytes);
// Conv + SSM state bytes of one request (fp32 states on every backend).
int64_t StateBytesPerRequest(const ModelConfig& config);

}  // namespace tessera
