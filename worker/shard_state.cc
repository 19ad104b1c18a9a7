// K/V growth doubles capacity, so a long decode reallocates O(log n) times.
#include "worker/shard_state.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/layer_params.h"

namespace tessera {

absl::StatusOr<std::unique_ptr<ShardState>> ShardState::Make(Backend& backend, const ModelConfig& config,
                                                             int64_t begin, int64_t capacity_tokens) {
  const AttentionConfig& a = config.attention;
  const MambaConfig& m = config.mamba;
  const size_t mamba_layers = static_cast<size_t>(config.CountBlocks(BlockKind::kMamba));
  std::unique_ptr<ShardState> s(
      new ShardState(backend, begin, capacity_tokens, a.num_kv_heads * a.head_dim, mamba_layers));
  s->attention.resize(config.CountBlocks(BlockKind::kAttention));
  for (size_t i = 0; i < mamba_layers; ++i) {
    MambaState layer;
    ASSIGN_OR_RETURN(layer.conv, backend.Allocate(m.conv_kernel - 1, m.conv_channels(), ElementType::kF32));
    ASSIGN_OR_RETURN(layer.ssm, backend.Allocate(m.num_heads, m.head_dim * m.state_size, ElementType::kF32));
    s->mamba.push_back(std::move(layer));
  }
  return s;
}

int64_t ShardState::MemoryBytes() const {
  int64_t bytes = 0;
  for (const KvCache& kv : attention) bytes += kv.k.bytes() + kv.v.bytes();
  for (const MambaState& layer : mamba) bytes += layer.conv.bytes() + layer.ssm.bytes();
  return bytes;
}

absl::Status ShardState::ReserveKv(OpStream& ops, int64_t more) {
  for (KvCache& kv : attention) {
    const int64_t needed = kv.tokens + more;
    if (needed <= kv.capacity()) continue;
    const int64_t capacity = std::max({needed, 2 * kv.capacity(), capacity_hint_});
    ASSIGN_OR_RETURN(Buffer k, backend_.Allocate(capacity, kv_width_, backend_.matrix_type()));
    ASSIGN_OR_RETURN(Buffer v, backend_.Allocate(capacity, kv_width_, backend_.matrix_type()));
    if (kv.tokens > 0) {
      RETURN_IF_ERROR(ops.Run(layer_params::Copy(kv.keys(), k.view().Rows(0, kv.tokens))));
      RETURN_IF_ERROR(ops.Run(layer_params::Copy(kv.values(), v.view().Rows(0, kv.tokens))));
      RETURN_IF_ERROR(ops.Finish());  // the old buffers may be freed only after the copies read them
    }
    kv.k = std::move(k);
    kv.v = std::move(v);
  }
  return absl::OkStatus();
}

absl::Status ShardState::AppendFrom(OpStream& ops, const ShardState& from, int64_t position, int64_t rows,
                                    bool copy_mamba) {
  const int64_t row0 = position - from.kv_begin();  // first of `from`'s K/V rows to copy
  if (position != num_tokens_ || rows < 0 || row0 < 0 || from.attention.size() != attention.size() ||
      (copy_mamba && (!from.has_mamba_states() || !has_mamba_states()))) {
    return absl::InternalError(absl::StrCat("cannot continue a state at ", num_tokens_, " with ", rows,
                                            " rows from position ", position, " of a state from ", from.kv_begin()));
  }
  for (const KvCache& kv : from.attention) {
    if (row0 + rows > kv.tokens) {
      return absl::InternalError(absl::StrCat("state holds ", kv.tokens, " K/V rows, ", row0 + rows, " asked"));
    }
  }
  RETURN_IF_ERROR(ReserveKv(ops, rows));
  for (size_t slot = 0; slot < attention.size(); ++slot) {
    KvCache& kv = attention[slot];
    const KvCache& src = from.attention[slot];
    RETURN_IF_ERROR(ops.Run(layer_params::Copy(src.k.view().Rows(row0, rows), kv.k.view().Rows(kv.tokens, rows))));
    RETURN_IF_ERROR(ops.Run(layer_params::Copy(src.v.view().Rows(row0, rows), kv.v.view().Rows(kv.tokens, rows))));
    kv.tokens += rows;
  }
  if (copy_mamba) {
    for (size_t slot = 0; slot < mamba.size(); ++slot) {
      RETURN_IF_ERROR(ops.Run(layer_params::Copy(from.mamba[slot].conv.view(), mamba[slot].conv.view())));
      RETURN_IF_ERROR(ops.Run(layer_params::Copy(from.mamba[slot].ssm.view(), mamba[slot].ssm.view())));
    }
  }
  num_tokens_ += rows;
  return ops.Finish();
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
