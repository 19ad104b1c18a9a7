// Everything a batched decode step reads that is a request's own and changes
// from step to step, in one block of the backend's memory, uploaded once per
// step: per Mamba state slot each row's conv and SSM state pointers, per
// attention slot its K and V cache pointers and K/V lengths (this step's row
// included), and each row's position and token id, then RoPE's inverse
// frequencies. The step's ops (ConvStep, SsdStep, DecodeRopeAppend,
// DecodeAttention, Embedding) read them from there, so the ops themselves
// are the same every step: what a captured step (a CUDA graph) needs, since
// its replays differ only in this block's contents.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/model_config.h"
#include "worker/shard_state.h"

namespace tessera {

// Where each part sits in the block: 8-byte words of pointers, then int32s,
// then floats. Depends on the model and the row count only.
struct DecodeStepLayout {
  int64_t rows = 0;
  int64_t mamba = 0;      // Mamba state slots
  int64_t attention = 0;  // attention state slots
  int64_t rotary_half = 0;  // rotary_dim / 2 (0 without attention)

  DecodeStepLayout(const ModelConfig& config, int64_t rows);
  int64_t pointer_words() const { return 2 * (mamba + attention) * rows; }
  // int32 slots after the pointers: kv_lens (attention, rows), positions (rows), ids (rows), inv_freq (floats).
  int64_t kv_lens_at() const { return 0; }
  int64_t positions_at() const { return attention * rows; }
  int64_t ids_at() const { return (attention + 1) * rows; }
  int64_t inv_freq_at() const { return (attention + 2) * rows; }
  int64_t words() const { return pointer_words() + (inv_freq_at() + rotary_half + 1) / 2; }
};

// One row of the step: its memory, its token (at global position state->num_tokens()).
struct DecodeStepRow {
  const ShardState* state = nullptr;
  int32_t token = 0;
};

// The block's host image for `rows` (layout.rows of them); INVALID_ARGUMENT
// for a token outside the vocabulary.
absl::StatusOr<std::vector<uint64_t>> MakeDecodeStepInputs(const ModelConfig& config, const DecodeStepLayout& layout,
                                                           absl::Span<const DecodeStepRow> rows);

// Typed views of the block at `words` (in the backend's memory).
struct DecodeStepTable {
  DecodeStepTable() = default;
  DecodeStepTable(const DecodeStepLayout& layout, const void* words);
  float* const* conv = nullptr;     // (mamba, rows)
  float* const* ssm = nullptr;      // (mamba, rows)
  void* const* k = nullptr;         // (attention, rows)
  void* const* v = nullptr;         // (attention, rows)
  const int32_t* kv_lens = nullptr;  // (attention, rows)
  const int32_t* positions = nullptr;  // (rows)
  const int32_t* ids = nullptr;        // (rows)
  const float* inv_freq = nullptr;     // (rotary_half)
};

}  // namespace tessera
