// nemotron_h: one mixer per layer, named by `layers_block_type` (transformers
// 5: linear_attention / full_attention / mlp / moe; older: mamba / attention),
// its alias `layer_types`, or the hub's `hybrid_override_pattern` string (M * - E).
// Attention has no positional encoding; MLPs and experts are relu²; the gated
// norm is grouped by n_groups. MoE layers (Nemotron-3-Nano) are read in full:
// sigmoid routing with a correction bias, group-limited top-k, shared experts.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "model/config_families.h"

namespace tessera::config_families {
namespace {

absl::StatusOr<BlockKind> KindOfName(const ConfigReader& r, Keys keys, const std::string& name) {
  if (name == "mamba" || name == "linear_attention") return BlockKind::kMamba;
  if (name == "attention" || name == "full_attention") return BlockKind::kAttention;
  if (name == "mlp") return BlockKind::kMlp;
  if (name == "moe") return BlockKind::kMoe;
  return r.Error(keys, absl::StrCat("has unknown layer type '", name, "'"));
}

absl::StatusOr<std::vector<BlockKind>> ReadLayerKinds(const ConfigReader& r) {
  std::vector<BlockKind> kinds;
  const Keys list_keys = {"layers_block_type", "layer_types"};
  if (const Json* list = r.Find(list_keys); list != nullptr) {
    if (!list->is_array()) return r.Error(list_keys, "must be a list of strings");
    for (const Json& v : *list) {
      ASSIGN_OR_RETURN(BlockKind kind, KindOfName(r, list_keys, v.is_string() ? v.get<std::string>() : v.dump()));
      kinds.push_back(kind);
    }
    return kinds;
  }
  if (const Json* pattern = r.Find({"hybrid_override_pattern"}); pattern != nullptr) {
    if (!pattern->is_string()) return r.Error({"hybrid_override_pattern"}, "must be a string");
    for (char ch : pattern->get<std::string>()) {
      switch (ch) {
        case 'M': kinds.push_back(BlockKind::kMamba); break;
        case '*': kinds.push_back(BlockKind::kAttention); break;
        case '-': kinds.push_back(BlockKind::kMlp); break;
        case 'E': kinds.push_back(BlockKind::kMoe); break;
        default:
          return r.Error({"hybrid_override_pattern"}, absl::StrCat("has unknown layer symbol '", std::string(1, ch), "'"));
      }
    }
    return kinds;
  }
  return r.Error({"layers_block_type"}, "is missing (nor is hybrid_override_pattern given)");
}

absl::Status ReadMoe(const ConfigReader& r, MoeConfig& moe) {
  moe.routing = MoeRouting::kSigmoidBiasedTopK;
  moe.activation = MlpActivation::kRelu2;
  ASSIGN_OR_RETURN(moe.experts, r.PositiveInt({"n_routed_experts", "num_local_experts"}));
  ASSIGN_OR_RETURN(moe.top_k, r.PositiveInt({"num_experts_per_tok"}));
  ASSIGN_OR_RETURN(moe.expert_intermediate_size, r.PositiveInt({"moe_intermediate_size"}));
  ASSIGN_OR_RETURN(moe.shared_experts, r.NonNegativeIntOr({"n_shared_experts"}, 1));
  ASSIGN_OR_RETURN(moe.shared_intermediate_size,
                   r.PositiveIntOr({"moe_shared_expert_intermediate_size"}, moe.expert_intermediate_size));
  ASSIGN_OR_RETURN(double scaling, r.FloatOr({"routed_scaling_factor"}, 1.0));
  moe.routed_scaling_factor = static_cast<float>(scaling);
  ASSIGN_OR_RETURN(moe.n_group, r.PositiveIntOr({"n_group"}, 1));
  ASSIGN_OR_RETURN(moe.topk_group, r.PositiveIntOr({"topk_group"}, 1));
  ASSIGN_OR_RETURN(moe.norm_topk_prob, r.BoolOr({"norm_topk_prob"}, true));
  ASSIGN_OR_RETURN(moe.latent_size, r.NonNegativeIntOr({"moe_latent_size"}, 0));
  if (moe.top_k > moe.experts) {
    return r.Error({"num_experts_per_tok"}, absl::StrCat("(", moe.top_k, ") must be <= n_routed_experts (",
                                                         moe.experts, ")"));
  }
  if (moe.experts % moe.n_group != 0 || moe.topk_group > moe.n_group) {
    return r.Error({"n_group"}, absl::StrCat("(", moe.n_group, ") must divide n_routed_experts (", moe.experts,
                                             ") and be >= topk_group (", moe.topk_group, ")"));
  }
  if (!(scaling > 0 && std::isfinite(scaling))) return r.Error({"routed_scaling_factor"}, "must be a number > 0");
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseNemotronH(const ConfigReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(std::vector<BlockKind> kinds, ReadLayerKinds(r));
  // transformers 5 derives the layer count from the layer list; a stale
  // num_hidden_layers is only warned about there, and is refused here.
  if (r.Has({"num_hidden_layers"}) && c.num_layers != static_cast<int64_t>(kinds.size())) {
    return r.Error({"num_hidden_layers"}, absl::StrCat("is ", c.num_layers, " but the layer list has ", kinds.size(),
                                                       " layers"));
  }
  c.num_layers = static_cast<int64_t>(kinds.size());
  if (c.num_layers == 0) return r.Error({"layers_block_type"}, "lists no layers");

  MambaConfig& m = c.mamba;
  ASSIGN_OR_RETURN(m.num_heads, r.PositiveInt({"mamba_num_heads"}));
  ASSIGN_OR_RETURN(m.head_dim, r.PositiveInt({"mamba_head_dim"}));
  ASSIGN_OR_RETURN(m.num_groups, r.PositiveIntOr({"n_groups", "mamba_n_groups"}, 8));
  ASSIGN_OR_RETURN(m.state_size, r.PositiveInt({"ssm_state_size", "mamba_d_state"}));
  ASSIGN_OR_RETURN(m.conv_kernel, r.PositiveIntOr({"conv_kernel", "mamba_d_conv"}, 4));
  ASSIGN_OR_RETURN(m.chunk_size, r.PositiveIntOr({"chunk_size", "mamba_chunk_size"}, 128));
  ASSIGN_OR_RETURN(m.conv_bias, r.BoolOr({"use_conv_bias", "mamba_conv_bias"}, true));
  ASSIGN_OR_RETURN(m.proj_bias, r.BoolOr({"mamba_proj_bias", "use_bias"}, false));
  m.norm_per_group = true;
  RETURN_IF_ERROR(ReadTimeStepLimit(r, {"time_step_limit", "mamba_dt_limit"}, m));
  ASSIGN_OR_RETURN(double expand, r.FloatOr({"expand", "mamba_expand"}, 0.0));
  RETURN_IF_ERROR(CheckMambaShapes(r, m, 0, {"mamba_num_heads"}));
  ASSIGN_OR_RETURN(std::string mamba_act, r.StringOr({"mamba_hidden_act"}, "silu"));
  if (mamba_act != "silu" && mamba_act != "swish") {
    return r.Error({"mamba_hidden_act"}, absl::StrCat("'", mamba_act, "' is not supported (silu)"));
  }
  (void)expand;  // nemotron_h's mixer width is mamba_num_heads x mamba_head_dim; expand is informational

  RETURN_IF_ERROR(ReadAttentionHeads(r, c, c.attention));
  c.attention.rotary_dim = 0;  // nemotron_h attention has no positional encoding
  RETURN_IF_ERROR(CheckAttentionShapes(r, c.attention));

  ASSIGN_OR_RETURN(c.mlp.intermediate_size, r.PositiveIntOr({"intermediate_size"}, 0));
  ASSIGN_OR_RETURN(c.mlp.bias, r.BoolOr({"mlp_bias"}, false));
  ASSIGN_OR_RETURN(std::string act, r.StringOr({"mlp_hidden_act"}, "relu2"));
  if (act != "relu2") return r.Error({"mlp_hidden_act"}, absl::StrCat("'", act, "' is not supported (relu2)"));
  c.mlp.activation = MlpActivation::kRelu2;

  std::vector<int64_t> moe_layers;
  bool has_mlp = false;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = LayerPrefix("backbone.", i);
    c.blocks.push_back({kinds[i], i, p + "norm.weight", p + "mixer."});
    if (kinds[i] == BlockKind::kMoe) moe_layers.push_back(i);
    has_mlp = has_mlp || kinds[i] == BlockKind::kMlp;
  }
  if (has_mlp && c.mlp.intermediate_size == 0) return r.Error({"intermediate_size"}, "is missing (the model has MLP layers)");
  if (moe_layers.empty()) {
    // transformers writes the MoE keys with their defaults into dense configs too.
    for (const char* key : {"n_routed_experts", "num_local_experts", "num_experts_per_tok", "moe_intermediate_size",
                            "n_shared_experts", "moe_shared_expert_intermediate_size", "routed_scaling_factor",
                            "n_group", "topk_group", "norm_topk_prob", "moe_latent_size"}) {
      r.Find({key});
    }
  } else {
    RETURN_IF_ERROR(ReadMoe(r, c.moe));
    if (c.moe.latent_size > 0) {
      c.unserved.push_back(absl::StrCat("layers ", absl::StrJoin(moe_layers, ","), " are mixture-of-experts with "
                                        "moe_latent_size ", c.moe.latent_size, " (latent expert projections), "
                                        "which Tessera does not support"));
    }
  }
  c.embedding_weight = "backbone.embeddings.weight";
  c.final_norm_weight = "backbone.norm_f.weight";
  return absl::OkStatus();
}

}  // namespace tessera::config_families
