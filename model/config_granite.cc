// granitemoehybrid (IBM Granite-4.0-H): Mamba-2 or attention mixers
// (`layer_types`, both vocabularies), each layer followed by an MoE block
// (routed SwiGLU experts with a fused gate_up projection, softmax over the
// top-k router logits, plus the always-on shared MLP) or, with
// num_local_experts 0, the shared MLP alone; four multipliers; RoPE or none.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/config_families.h"

namespace tessera::config_families {
namespace {

absl::StatusOr<float> Multiplier(const ConfigReader& r, Keys keys) {
  ASSIGN_OR_RETURN(double value, r.FloatOr(keys, 1.0));
  if (!(value > 0 && std::isfinite(value))) return r.Error(keys, absl::StrCat("must be a number > 0. Given: ", value));
  return static_cast<float>(value);
}

}  // namespace

absl::Status ParseGraniteMoeHybrid(const ConfigReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(c.num_layers, r.PositiveInt({"num_hidden_layers"}));
  std::vector<BlockKind> mixers(c.num_layers, BlockKind::kMamba);
  const Keys layer_keys = {"layer_types", "layers_block_type"};
  if (const Json* types = r.Find(layer_keys); types != nullptr) {
    if (!types->is_array() || static_cast<int64_t>(types->size()) != c.num_layers) {
      return r.Error(layer_keys, absl::StrCat("must list num_hidden_layers (", c.num_layers, ") layer types"));
    }
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string name = (*types)[i].is_string() ? (*types)[i].get<std::string>() : (*types)[i].dump();
      if (name == "mamba" || name == "linear_attention") {
        mixers[i] = BlockKind::kMamba;
      } else if (name == "attention" || name == "full_attention") {
        mixers[i] = BlockKind::kAttention;
      } else {
        return r.Error(layer_keys, absl::StrCat("has unknown layer type '", name, "'"));
      }
    }
  }

  RETURN_IF_ERROR(ReadMambaPrefixedMixer(r, c));

  AttentionConfig& a = c.attention;
  RETURN_IF_ERROR(ReadAttentionHeads(r, c, a));
  ASSIGN_OR_RETURN(std::string position, r.StringOr({"position_embedding_type"}, "nope"));
  if (position == "rope") {
    RETURN_IF_ERROR(ReadRope(r, a, /*default_factor=*/1.0));
  } else if (position == "nope") {
    a.rotary_dim = 0;
    r.Find({"rope_parameters"});  // written with defaults, unused without RoPE
    r.Find({"rope_theta"});
  } else {
    return r.Error({"position_embedding_type"}, absl::StrCat("is '", position, "'; expected 'rope' or 'nope'"));
  }
  RETURN_IF_ERROR(CheckAttentionShapes(r, a));
  ASSIGN_OR_RETURN(float attention_multiplier, Multiplier(r, {"attention_multiplier"}));
  a.softmax_scale = r.Has({"attention_multiplier"}) ? attention_multiplier : 0.0f;

  ASSIGN_OR_RETURN(c.multipliers.embedding, Multiplier(r, {"embedding_multiplier"}));
  ASSIGN_OR_RETURN(c.multipliers.residual, Multiplier(r, {"residual_multiplier"}));
  ASSIGN_OR_RETURN(c.multipliers.logits_scaling, Multiplier(r, {"logits_scaling"}));

  ASSIGN_OR_RETURN(std::string act, r.StringOr({"hidden_act"}, "silu"));
  if (act != "silu" && act != "swish") return r.Error({"hidden_act"}, absl::StrCat("'", act, "' is not supported (silu)"));
  MoeConfig& moe = c.moe;
  moe.routing = MoeRouting::kSoftmaxTopK;
  moe.activation = MlpActivation::kSwiGlu;
  ASSIGN_OR_RETURN(moe.experts, r.NonNegativeIntOr({"num_local_experts"}, 8));
  ASSIGN_OR_RETURN(moe.top_k, r.NonNegativeIntOr({"num_experts_per_tok"}, 2));
  ASSIGN_OR_RETURN(moe.expert_intermediate_size, r.PositiveIntOr({"intermediate_size"}, 0));
  ASSIGN_OR_RETURN(moe.shared_intermediate_size, r.PositiveIntOr({"shared_intermediate_size"}, 1024));
  moe.shared_experts = 1;
  moe.norm_topk_prob = true;  // the softmax over the chosen k sums to 1
  if (moe.experts > 0 && (moe.top_k == 0 || moe.top_k > moe.experts)) {
    return r.Error({"num_experts_per_tok"}, absl::StrCat("(", moe.top_k, ") must be in [1, num_local_experts (",
                                                         moe.experts, ")]"));
  }
  if (moe.experts > 0 && moe.expert_intermediate_size == 0) {
    return r.Error({"intermediate_size"}, "is missing (the experts' width)");
  }

  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = LayerPrefix("model.", i);
    if (mixers[i] == BlockKind::kAttention) {
      c.blocks.push_back({BlockKind::kAttention, i, p + "input_layernorm.weight", p + "self_attn."});
    } else {
      c.blocks.push_back({BlockKind::kMamba, i, p + "input_layernorm.weight", p + "mamba."});
    }
    c.blocks.push_back({BlockKind::kMoe, i, p + "post_attention_layernorm.weight", p});
  }
  c.embedding_weight = "model.embed_tokens.weight";
  c.final_norm_weight = "model.norm.weight";
  return absl::OkStatus();
}

}  // namespace tessera::config_families
