// What Tessera needs to know about a model, read from its config.json as the
// hub publishes it. Families differ in spelling (mamba2 in transformers' and
// in mamba_ssm's own format, bamba, nemotron_h, granitemoehybrid; hub aliases;
// `hybrid_override_pattern` vs `layers_block_type` vs `layer_types`; bare
// Infinity vs {"__float__": "Infinity"}); this file turns them all into one
// plain struct. Every key that changes the math is applied or refused by name
// (model/config_keys.h lists the keys each family reads, ignores and refuses);
// keys nobody reads are kept in `unread_keys` for `tessera inspect`.
//
// A model is a list of residual blocks: x += op(norm(x)). A mamba2 or
// nemotron_h layer is one block; a bamba or granitemoehybrid layer is two
// (mixer, then MLP or MoE).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tessera {

enum class ModelFamily { kMamba2, kBamba, kNemotronH, kGraniteMoeHybrid };

// kMoe: a mixture-of-experts block (routed experts + shared expert/MLP).
enum class BlockKind { kMamba, kAttention, kMlp, kMoe };

enum class MlpActivation { kSwiGlu, kRelu2 };

// How a checkpoint names its tensors.
enum class WeightNaming {
  kTransformers,  // what transformers writes (model.* / backbone.*)
  kMambaSsm,      // mamba_ssm's own: backbone.embedding, backbone.layers.N.mixer, ...
};

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
  int64_t rotary_dim = 0;    // 0: no positional encoding (nemotron_h, granite "nope")
  float rope_theta = 10000.0f;
  float softmax_scale = 0.0f;  // 0: 1/sqrt(D); granitemoehybrid's attention_multiplier otherwise
};

struct MlpConfig {
  int64_t intermediate_size = 0;
  MlpActivation activation = MlpActivation::kSwiGlu;
  bool bias = false;
};

// How an MoE layer picks its experts (DESIGN.md, "Mixture of experts").
enum class MoeRouting {
  kSigmoidBiasedTopK,  // nemotron_h: sigmoid scores, e_score_correction_bias for the choice, grouped top-k
  kSoftmaxTopK,        // granitemoehybrid: top-k of the logits, softmax over those k
};

struct MoeConfig {
  int64_t experts = 0;                   // routed experts (0: the shared MLP alone)
  int64_t top_k = 0;                     // experts per token
  int64_t expert_intermediate_size = 0;  // of each routed expert
  int64_t shared_experts = 0;            // always-on experts (granite: 1, the shared MLP)
  int64_t shared_intermediate_size = 0;
  MoeRouting routing = MoeRouting::kSoftmaxTopK;
  MlpActivation activation = MlpActivation::kSwiGlu;
  int64_t n_group = 1;            // expert groups for group-limited routing
  int64_t topk_group = 1;         // groups kept
  bool norm_topk_prob = false;    // renormalize the chosen weights to sum 1
  float routed_scaling_factor = 1.0f;
  int64_t latent_size = 0;        // nemotron_h moe_latent_size; 0: none
};

// granitemoehybrid's scalings (1 everywhere else).
struct Multipliers {
  float embedding = 1.0f;       // embeddings are scaled by it
  float residual = 1.0f;        // each block's output is scaled by it before the residual add
  float logits_scaling = 1.0f;  // logits are divided by it
};

struct ModelConfig {
  ModelFamily family = ModelFamily::kMamba2;
  std::string model_type;
  WeightNaming naming = WeightNaming::kTransformers;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  float norm_eps = 1e-5f;
  bool tie_word_embeddings = false;
  // The context the checkpoint was trained for (config max_position_embeddings);
  // 0: none stated. Not a limit by itself: see ContextLimit in the coordinator.
  int64_t max_position_embeddings = 0;
  int64_t eos_token_id = -1;

  MambaConfig mamba;
  AttentionConfig attention;
  MlpConfig mlp;
  MoeConfig moe;
  Multipliers multipliers;
  std::vector<BlockSpec> blocks;   // in execution order

  std::string embedding_weight;    // tensor names
  std::string final_norm_weight;
  std::string lm_head_weight;      // equals embedding_weight when tied

  // Why Tessera cannot run this model, though its config is understood
  // (e.g. MoE with latent projections); empty when it can. Engines refuse with these reasons.
  std::vector<std::string> unserved;
  // Keys of config.json that no family reads or knowingly ignores, sorted.
  std::vector<std::string> unread_keys;

  int64_t CountBlocks(BlockKind kind) const;
  // One character per layer: M Mamba-2, * attention, - MLP, E MoE (the mixer
  // of a two-block layer, or E when the layer's second block is MoE and its
  // mixer is not shown).
  std::string LayerPattern() const;
};

// Parses config.json text. `source` names the file in error messages.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text, absl::string_view source);

// Reads and parses DIR/config.json.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

// FAILED_PRECONDITION listing config.unserved, or OK when it is empty.
absl::Status CheckServed(const ModelConfig& config);

absl::string_view BlockKindName(BlockKind kind);
absl::string_view ModelFamilyName(ModelFamily family);

}  // namespace tessera
