// Allocation and accounting of a request's KV and recurrent states.
#include "worker/sequence_state.h"

namespace tessera {

SequenceState SequenceState::ForModel(const ModelConfig& config) {
  SequenceState s;
  const MambaConfig& m = config.mamba;
  s.mamba.resize(config.CountBlocks(BlockKind::kMamba));
  for (MambaLayerState& layer : s.mamba) {
    layer.conv.assign((m.conv_kernel - 1) * m.conv_channels(), 0.0f);  // (K-1, C)
    layer.ssm.assign(m.num_heads * m.head_dim * m.state_size, 0.0f);  // (H, P, N)
  }
  s.attention.resize(config.CountBlocks(BlockKind::kAttention));
  return s;
}

SequenceState SequenceState::ForShard(const ModelConfig& config, int64_t begin) {
  SequenceState s = ForModel(config);
  s.num_tokens = begin;
  s.kv_begin = begin;
  return s;
}

int64_t SequenceState::MemoryBytes() const {
  int64_t floats = 0;
  for (const MambaLayerState& layer : mamba) floats += layer.conv.size() + layer.ssm.size();
  for (const AttentionLayerKv& layer : attention) floats += layer.k.size() + layer.v.size();
  return floats * static_cast<int64_t>(sizeof(float));
}

int64_t KvBytesPerToken(const ModelConfig& config, int64_t kv_element_bytes) {
  const AttentionConfig& a = config.attention;
  return config.CountBlocks(BlockKind::kAttention) * 2 * a.num_kv_heads * a.head_dim * kv_element_bytes;
}

int64_t StateBytesPerRequest(const ModelConfig& config) {
  const MambaConfig& m = config.mamba;
  return config.CountBlocks(BlockKind::kMamba) *
         ((m.conv_kernel - 1) * m.conv_channels() + m.num_heads * m.head_dim * m.state_size) *
         static_cast<int64_t>(sizeof(float));
}

}  // namespace tessera
