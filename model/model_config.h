// What Tessera needs to know about a model, read from a Hugging Face
// config.json. Families differ in spelling (mamba2 / bamba / nemotron_h, hub
// aliases, `hybrid_override_pattern` vs `layers_block_type`,
// {"__float__": "Infinity"}); this file turns them all into one plain struct
// and names the key of anything it does not understand.
//
// A model is a list of residual blocks: x += op(norm(x)). A mamba2 or
// nemotron_h layer is one block; a bamba layer is two (mixer, then MLP).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tessera {

enum class ModelFamily { kMamba2, kBamba, kNemotronH };

enum class BlockKind { kMamba, kAttention, kMlp };

enum class MlpActivation { kSwiGlu, kRelu2 };

struct BlockSpec {
  BlockKind kind = BlockKind::kMamba;
  int64_t layer = 0;          // Hugging Face layer index
  std::string norm_weight;    // tensor name of the pre-norm weight
  std::string prefix;         // tensor name prefix of the op, ending in '.'
};

struct MambaConfig {
  int64_t num_heads = 0;     // H
  int64_t head_dim = 0;      // P
  int64_t num_groups = 0;    // G
  int64_t state_size = 0;    // N
  int64_t conv_kernel = 0;   // K
  int64_t chunk_size = 0;    // Q
  bool conv_bias = true;
  bool proj_bias = false;
  float dt_min = 0.0f;       // time_step_limit
  float dt_max = 0.0f;
  bool norm_per_group = false;  // gated RMSNorm grouped by G (else over d_inner)

  int64_t d_inner() const { return num_heads * head_dim; }
  int64_t conv_channels() const { return d_inner() + 2 * num_groups * state_size; }
  int64_t in_proj_width() const { return 2 * d_inner() + 2 * num_groups * state_size + num_heads; }
  int64_t norm_group_size() const { return norm_per_group ? d_inner() / num_groups : d_inner(); }
};

struct AttentionConfig {
  int64_t num_heads = 0;     // Hq
  int64_t num_kv_heads = 0;  // Hkv
  int64_t head_dim = 0;      // D
  bool bias = false;
  int64_t rotary_dim = 0;    // 0: no positional encoding (nemotron_h)
  float rope_theta = 10000.0f;
};

struct MlpConfig {
  int64_t intermediate_size = 0;
  MlpActivation activation = MlpActivation::kSwiGlu;
  bool bias = false;
};

struct ModelConfig {
  ModelFamily family = ModelFamily::kMamba2;
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  float norm_eps = 1e-5f;
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 0;  // 0: unbounded (pure Mamba-2)
  int64_t eos_token_id = -1;

  MambaConfig mamba;
  AttentionConfig attention;
  MlpConfig mlp;
  std::vector<BlockSpec> blocks;   // in execution order

  std::string embedding_weight;    // tensor names
  std::string final_norm_weight;
  std::string lm_head_weight;      // equals embedding_weight when tied

  int64_t CountBlocks(BlockKind kind) const;
};

// Parses config.json text. `source` names the file in error messages.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text, absl::string_view source);

// Reads and parses DIR/config.json.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

absl::string_view BlockKindName(BlockKind kind);

}  // namespace tessera
