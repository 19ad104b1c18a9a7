#include "worker/decode_step_inputs.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/embedding.h"
#include "kernels/rope.h"

namespace tessera {

DecodeStepLayout::DecodeStepLayout(const ModelConfig& config, int64_t rows)
    : rows(rows), mamba(config.CountBlocks(BlockKind::kMamba)), attention(config.CountBlocks(BlockKind::kAttention)),
      rotary_half(config.CountBlocks(BlockKind::kAttention) > 0 ? config.attention.rotary_dim / 2 : 0) {}

absl::StatusOr<std::vector<uint64_t>> MakeDecodeStepInputs(const ModelConfig& config, const DecodeStepLayout& layout,
                                                           absl::Span<const DecodeStepRow> rows) {
  const int64_t n = layout.rows;
  if (static_cast<int64_t>(rows.size()) != n) {
    return absl::InternalError(absl::StrCat("decode step inputs for ", n, " rows given ", rows.size()));
  }
  std::vector<uint64_t> words(layout.words(), 0);  // (words)
  auto address = [](const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); };
  int32_t* ints = reinterpret_cast<int32_t*>(words.data() + layout.pointer_words());
  std::vector<int32_t> ids(n);  // (rows)
  for (int64_t r = 0; r < n; ++r) {
    const ShardState& state = *rows[r].state;
    if (static_cast<int64_t>(state.mamba.size()) != layout.mamba ||
        static_cast<int64_t>(state.attention.size()) != layout.attention) {
      return absl::InternalError("a decode row's state does not match the model's layers");
    }
    for (int64_t slot = 0; slot < layout.mamba; ++slot) {
      words[slot * n + r] = address(state.mamba[slot].conv.view().data);
      words[(layout.mamba + slot) * n + r] = address(state.mamba[slot].ssm.view().data);
    }
    for (int64_t slot = 0; slot < layout.attention; ++slot) {
      const KvCache& kv = state.attention[slot];
      words[(2 * layout.mamba + slot) * n + r] = address(kv.k.view().data);
      words[(2 * layout.mamba + layout.attention + slot) * n + r] = address(kv.v.view().data);
      ints[layout.kv_lens_at() + slot * n + r] = static_cast<int32_t>(kv.tokens + 1);
    }
    ints[layout.positions_at() + r] = static_cast<int32_t>(state.num_tokens());
    ids[r] = rows[r].token;
  }
  RETURN_IF_ERROR(CheckEmbeddingTokenIds(ids.data(), n, config.vocab_size));
  std::memcpy(ints + layout.ids_at(), ids.data(), n * sizeof(int32_t));
  if (layout.rotary_half > 0) {
    const std::vector<float> inv_freq = RopeInverseFrequencies(config.attention.rope_theta, 2 * layout.rotary_half);
    std::memcpy(ints + layout.inv_freq_at(), inv_freq.data(), inv_freq.size() * sizeof(float));
  }
  return words;
}

DecodeStepTable::DecodeStepTable(const DecodeStepLayout& layout, const void* words) {
  const auto* w = static_cast<const uint64_t*>(words);
  const int64_t n = layout.rows;
  conv = reinterpret_cast<float* const*>(w);
  ssm = reinterpret_cast<float* const*>(w + layout.mamba * n);
  k = reinterpret_cast<void* const*>(w + 2 * layout.mamba * n);
  v = reinterpret_cast<void* const*>(w + (2 * layout.mamba + layout.attention) * n);
  const auto* ints = reinterpret_cast<const int32_t*>(w + layout.pointer_words());
  kv_lens = ints + layout.kv_lens_at();
  positions = ints + layout.positions_at();
  ids = ints + layout.ids_at();
  inv_freq = reinterpret_cast<const float*>(ints + layout.inv_freq_at());
}

}  // namespace tessera
