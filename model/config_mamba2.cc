// mamba2 in two spellings: transformers' Mamba2Config (model_type "mamba2",
// names backbone.embeddings / backbone.layers.N.mixer) and mamba_ssm's own
// MambaConfig (d_model, n_layer, ssm_cfg; names backbone.embedding, as the
// state-spaces/mamba2-* checkpoints have them). transformers' gated norm runs
// over the whole d_inner and gates first whatever `norm_before_gate` says;
// mamba_ssm's groups the norm by ngroups.
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/config_families.h"

namespace tessera::config_families {
namespace {

absl::Status AddMambaLayers(ModelConfig& c, absl::string_view embedding) {
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = LayerPrefix("backbone.", i);
    c.blocks.push_back({BlockKind::kMamba, i, p + "norm.weight", p + "mixer."});
  }
  c.embedding_weight = std::string(embedding);
  c.final_norm_weight = "backbone.norm_f.weight";
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseMamba2(const ConfigReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(c.num_layers, r.PositiveInt({"num_hidden_layers", "n_layer"}));
  MambaConfig& m = c.mamba;
  ASSIGN_OR_RETURN(m.num_heads, r.PositiveInt({"num_heads"}));
  ASSIGN_OR_RETURN(m.head_dim, r.PositiveInt({"head_dim"}));
  ASSIGN_OR_RETURN(m.num_groups, r.PositiveIntOr({"n_groups", "ngroups"}, 1));
  ASSIGN_OR_RETURN(m.state_size, r.PositiveInt({"state_size", "d_state"}));
  ASSIGN_OR_RETURN(m.conv_kernel, r.PositiveIntOr({"conv_kernel", "d_conv"}, 4));
  ASSIGN_OR_RETURN(m.chunk_size, r.PositiveIntOr({"chunk_size"}, 256));
  ASSIGN_OR_RETURN(m.conv_bias, r.BoolOr({"use_conv_bias"}, true));
  ASSIGN_OR_RETURN(m.proj_bias, r.BoolOr({"use_bias"}, false));
  m.norm_per_group = false;
  RETURN_IF_ERROR(ReadTimeStepLimit(r, {"time_step_limit"}, m));
  ASSIGN_OR_RETURN(double expand, r.FloatOr({"expand"}, 2.0));
  RETURN_IF_ERROR(CheckMambaShapes(r, m, static_cast<int64_t>(expand * c.hidden_size), {"num_heads"}));
  return AddMambaLayers(c, "backbone.embeddings.weight");
}

absl::Status ParseMambaSsm(const ConfigReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(c.num_layers, r.PositiveInt({"n_layer"}));
  // The embedding is padded to a multiple of pad_vocab_size_multiple, as mamba_ssm pads it.
  ASSIGN_OR_RETURN(int64_t multiple, r.PositiveIntOr({"pad_vocab_size_multiple"}, 8));
  c.vocab_size = (c.vocab_size + multiple - 1) / multiple * multiple;
  ASSIGN_OR_RETURN(c.tie_word_embeddings, r.BoolOr({"tie_embeddings"}, true));
  const Json* ssm = r.Find({"ssm_cfg"});
  if (ssm == nullptr || !ssm->is_object()) return r.Error({"ssm_cfg"}, "must be an object");
  const ConfigReader s = r.Nested({"ssm_cfg"});
  ASSIGN_OR_RETURN(std::string layer, s.StringOr({"layer"}, "Mamba1"));
  if (layer != "Mamba2") {
    return s.Error({"layer"}, absl::StrCat("is '", layer, "'; only Mamba-2 (\"Mamba2\") layers are supported"));
  }
  MambaConfig& m = c.mamba;
  ASSIGN_OR_RETURN(m.state_size, s.PositiveIntOr({"d_state"}, 128));
  ASSIGN_OR_RETURN(m.conv_kernel, s.PositiveIntOr({"d_conv"}, 4));
  ASSIGN_OR_RETURN(double expand, s.FloatOr({"expand"}, 2.0));
  ASSIGN_OR_RETURN(m.head_dim, s.PositiveIntOr({"headdim"}, 64));
  ASSIGN_OR_RETURN(m.num_groups, s.PositiveIntOr({"ngroups"}, 1));
  ASSIGN_OR_RETURN(m.chunk_size, s.PositiveIntOr({"chunk_size"}, 256));
  ASSIGN_OR_RETURN(m.conv_bias, s.BoolOr({"conv_bias"}, true));
  ASSIGN_OR_RETURN(m.proj_bias, s.BoolOr({"bias"}, false));
  ASSIGN_OR_RETURN(bool rmsnorm, s.BoolOr({"rmsnorm"}, true));
  if (!rmsnorm) return s.Error({"rmsnorm"}, "is false; only Mamba-2 mixers with a gated RMSNorm are supported");
  ASSIGN_OR_RETURN(bool norm_before_gate, s.BoolOr({"norm_before_gate"}, false));
  if (norm_before_gate) return s.Error({"norm_before_gate"}, "is true; only gate-then-norm is supported");
  ASSIGN_OR_RETURN(std::string activation, s.StringOr({"activation"}, "swish"));
  if (activation != "swish" && activation != "silu") {
    return s.Error({"activation"}, absl::StrCat("is '", activation, "'; only SiLU (\"swish\") is supported"));
  }
  ASSIGN_OR_RETURN(bool d_has_hdim, s.BoolOr({"D_has_hdim"}, false));
  if (d_has_hdim) return s.Error({"D_has_hdim"}, "is true; a per-channel D is not supported");
  ASSIGN_OR_RETURN(int64_t d_ssm, s.NonNegativeIntOr({"d_ssm"}, 0));
  const int64_t d_inner = static_cast<int64_t>(expand * c.hidden_size);
  if (d_ssm != 0 && d_ssm != d_inner) {
    return s.Error({"d_ssm"}, absl::StrCat("(", d_ssm, ") differs from expand x d_model (", d_inner,
                                           "); a partly gated MLP mixer is not supported"));
  }
  if (d_inner % m.head_dim != 0) {
    return s.Error({"headdim"}, absl::StrCat("(", m.head_dim, ") must divide expand x d_model (", d_inner, ")"));
  }
  m.num_heads = d_inner / m.head_dim;
  m.norm_per_group = true;  // mamba_ssm's RMSNormGated: group_size = d_ssm / ngroups
  RETURN_IF_ERROR(ReadTimeStepLimit(s, {"dt_limit"}, m));
  for (const std::string& key : s.UnreadKeys()) {
    // Initialization and kernel choices of mamba_ssm's Mamba2: no effect on a forward pass.
    static const char* const kIgnored[] = {"dt_min", "dt_max", "dt_init_floor", "A_init_range", "use_mem_eff_path",
                                           "layer_idx", "sequence_parallel", "process_group", "device", "dtype"};
    bool known = false;
    for (const char* k : kIgnored) known = known || key == k;
    if (!known) return s.Error({key}, "is not supported");
  }
  RETURN_IF_ERROR(CheckMambaShapes(r, m, d_inner, {"ssm_cfg"}));
  c.lm_head_weight = c.tie_word_embeddings ? "backbone.embedding.weight" : "lm_head.weight";
  return AddMambaLayers(c, "backbone.embedding.weight");
}

}  // namespace tessera::config_families
