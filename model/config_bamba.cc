// bamba: Mamba-2 and attention mixers (attn_layer_indices), each layer
// followed by a SwiGLU MLP. transformers rotates half of each attention head
// (partial_rotary_factor 0.5, hard-coded in its BambaConfig); the hub's
// Bamba-9B configs say the same as "attn_rotary_emb": 64 of head_dim 128.
// Both spellings are read, and a config asking for another fraction is
// refused by name rather than computed differently from transformers.
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/config_families.h"

namespace tessera::config_families {

absl::Status ParseBamba(const ConfigReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(c.num_layers, r.PositiveInt({"num_hidden_layers"}));
  RETURN_IF_ERROR(ReadMambaPrefixedMixer(r, c));

  AttentionConfig& a = c.attention;
  RETURN_IF_ERROR(ReadAttentionHeads(r, c, a));
  RETURN_IF_ERROR(ReadRope(r, a, /*default_factor=*/0.5));
  if (a.rotary_dim * 2 != a.head_dim) {
    return r.Error({"partial_rotary_factor"}, absl::StrCat("rotates ", a.rotary_dim, " of ", a.head_dim,
                                                           " dims; transformers' Bamba always rotates half"));
  }
  if (r.Has({"attn_rotary_emb"})) {
    ASSIGN_OR_RETURN(int64_t dims, r.PositiveInt({"attn_rotary_emb"}));
    if (dims != a.rotary_dim) {
      return r.Error({"attn_rotary_emb"}, absl::StrCat("(", dims, ") is not half of head_dim ", a.head_dim,
                                                       ", which transformers' Bamba rotates"));
    }
  }
  RETURN_IF_ERROR(CheckAttentionShapes(r, a));

  ASSIGN_OR_RETURN(c.mlp.intermediate_size, r.PositiveInt({"intermediate_size"}));
  ASSIGN_OR_RETURN(c.mlp.bias, r.BoolOr({"mlp_bias"}, false));
  ASSIGN_OR_RETURN(std::string act, r.StringOr({"hidden_act"}, "silu"));
  if (act != "silu" && act != "swish") return r.Error({"hidden_act"}, absl::StrCat("'", act, "' is not supported (silu)"));
  c.mlp.activation = MlpActivation::kSwiGlu;

  std::vector<bool> is_attention(c.num_layers, false);
  if (const Json* indices = r.Find({"attn_layer_indices"}); indices != nullptr) {
    if (!indices->is_array()) return r.Error({"attn_layer_indices"}, "must be a list of layer indices");
    for (const Json& v : *indices) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.num_layers) {
        return r.Error({"attn_layer_indices"}, absl::StrCat("has ", v.dump(), ", not a layer index below ",
                                                            c.num_layers));
      }
      is_attention[v.get<int64_t>()] = true;
    }
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = LayerPrefix("model.", i);
    if (is_attention[i]) {
      c.blocks.push_back({BlockKind::kAttention, i, p + "input_layernorm.weight", p + "self_attn."});
    } else {
      c.blocks.push_back({BlockKind::kMamba, i, p + "input_layernorm.weight", p + "mamba."});
    }
    c.blocks.push_back({BlockKind::kMlp, i, p + "pre_ff_layernorm.weight", p + "feed_forward."});
  }
  c.embedding_weight = "model.embed_tokens.weight";
  c.final_norm_weight = "model.final_layernorm.weight";
  return absl::OkStatus();
}

}  // namespace tessera::config_families
