// config.json → ModelConfig: the keys every family shares, the dispatch to
// the family's reader (config_<family>.cc), then the keys of config_keys.h:
// refused ones checked by name, ignored ones set aside, the rest reported.
#include "model/model_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "model/config_families.h"
#include "model/config_json.h"
#include "model/config_keys.h"

namespace tessera {
namespace {

using config_families::Keys;

// More layers than any model has: a corrupt or hostile config.
constexpr int64_t kMaxLayers = 10000;

absl::Status ReadCommon(const ConfigReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(c.vocab_size, r.PositiveInt({"vocab_size"}));
  ASSIGN_OR_RETURN(c.hidden_size, r.PositiveInt({"hidden_size", "d_model"}));
  ASSIGN_OR_RETURN(c.num_layers, r.PositiveIntOr({"num_hidden_layers", "n_layer"}, 0));
  if (c.num_layers > kMaxLayers) {
    return r.Error({"num_hidden_layers"}, absl::StrCat("must be <= ", kMaxLayers, ". Given: ", c.num_layers));
  }
  ASSIGN_OR_RETURN(double eps, r.FloatOr({"rms_norm_eps", "layer_norm_epsilon", "norm_eps"}, 1e-5));
  if (!(eps > 0 && std::isfinite(eps))) return r.Error({"rms_norm_eps"}, absl::StrCat("must be > 0. Given: ", eps));
  c.norm_eps = static_cast<float>(eps);
  ASSIGN_OR_RETURN(c.tie_word_embeddings, r.BoolOr({"tie_word_embeddings", "tie_embeddings"}, false));
  ASSIGN_OR_RETURN(c.max_position_embeddings, r.PositiveIntOr({"max_position_embeddings"}, 0));
  // eos_token_id may be a list (the first is the one generation stops at by default).
  if (const Json* eos = r.Find({"eos_token_id"}); eos != nullptr) {
    if (eos->is_number_integer()) {
      c.eos_token_id = eos->get<int64_t>();
    } else if (eos->is_array() && !eos->empty() && (*eos)[0].is_number_integer()) {
      c.eos_token_id = (*eos)[0].get<int64_t>();
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyKeyLists(const ConfigReader& r, ModelConfig& c) {
  for (const RefusedKey& refused : RefusedConfigKeys(c.family, c.naming)) {
    RETURN_IF_ERROR(config_families::RefuseUnlessDefault(r, {refused.key}, Json::parse(refused.allowed_json),
                                                         refused.why));
  }
  for (const char* key : CommonIgnoredConfigKeys()) r.Find({key});
  for (const char* key : IgnoredConfigKeys(c.family, c.naming)) r.Find({key});
  for (const std::string& key : r.UnreadKeys()) c.unread_keys.push_back(key);
  return absl::OkStatus();
}

}  // namespace

namespace config_families {

absl::Status ReadMambaPrefixedMixer(const ConfigReader& r, ModelConfig& c) {
  MambaConfig& m = c.mamba;
  ASSIGN_OR_RETURN(m.num_heads, r.PositiveInt({"mamba_n_heads"}));
  ASSIGN_OR_RETURN(double expand, r.FloatOr({"mamba_expand"}, 2.0));
  const int64_t d_inner = static_cast<int64_t>(expand * c.hidden_size);
  if (const Json* d_head = r.Find({"mamba_d_head"}); d_head != nullptr && d_head->is_string()) {
    if (d_head->get<std::string>() != "auto") return r.Error({"mamba_d_head"}, "must be an integer or \"auto\"");
    m.head_dim = d_inner / m.num_heads;
  } else {
    ASSIGN_OR_RETURN(m.head_dim, r.PositiveIntOr({"mamba_d_head"}, d_inner / m.num_heads));
  }
  ASSIGN_OR_RETURN(m.num_groups, r.PositiveIntOr({"mamba_n_groups"}, 1));
  ASSIGN_OR_RETURN(m.state_size, r.PositiveInt({"mamba_d_state"}));
  ASSIGN_OR_RETURN(m.conv_kernel, r.PositiveIntOr({"mamba_d_conv"}, 4));
  ASSIGN_OR_RETURN(m.chunk_size, r.PositiveIntOr({"mamba_chunk_size"}, 256));
  ASSIGN_OR_RETURN(m.conv_bias, r.BoolOr({"mamba_conv_bias"}, true));
  ASSIGN_OR_RETURN(m.proj_bias, r.BoolOr({"mamba_proj_bias"}, false));
  m.norm_per_group = false;
  RETURN_IF_ERROR(ReadTimeStepLimit(r, {"time_step_limit"}, m));
  RETURN_IF_ERROR(CheckMambaShapes(r, m, d_inner, {"mamba_n_heads"}));

  return absl::OkStatus();
}

absl::Status ReadTimeStepLimit(const ConfigReader& r, Keys keys, MambaConfig& m) {
  m.dt_min = 0.0f;
  m.dt_max = std::numeric_limits<float>::infinity();
  const Json* v = r.Find(keys);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_array() || v->size() != 2) return r.Error(keys, "must be a list [min, max]");
  ASSIGN_OR_RETURN(double lo, r.FloatValue((*v)[0], keys));
  ASSIGN_OR_RETURN(double hi, r.FloatValue((*v)[1], keys));
  if (!(lo <= hi) || lo < 0) return r.Error(keys, absl::StrCat("must satisfy 0 <= min <= max, got ", v->dump()));
  m.dt_min = static_cast<float>(lo);
  m.dt_max = static_cast<float>(hi);
  return absl::OkStatus();
}

absl::Status CheckMambaShapes(const ConfigReader& r, const MambaConfig& m, int64_t expected_d_inner,
                              Keys heads_key) {
  if (expected_d_inner > 0 && m.d_inner() != expected_d_inner) {
    return r.Error(heads_key, absl::StrCat("times the head dim (", m.num_heads, " x ", m.head_dim,
                                           ") must equal the mixer width ", expected_d_inner));
  }
  if (m.num_heads % m.num_groups != 0) {
    return r.Error(heads_key, absl::StrCat("(", m.num_heads, ") must be a multiple of n_groups (",
                                           m.num_groups, ")"));
  }
  return absl::OkStatus();
}

absl::Status ReadAttentionHeads(const ConfigReader& r, const ModelConfig& c, AttentionConfig& a) {
  ASSIGN_OR_RETURN(a.num_heads, r.PositiveInt({"num_attention_heads"}));
  ASSIGN_OR_RETURN(a.num_kv_heads, r.PositiveIntOr({"num_key_value_heads"}, a.num_heads));
  ASSIGN_OR_RETURN(a.head_dim,
                   r.PositiveIntOr({"head_dim", "attention_head_dim"}, c.hidden_size / a.num_heads));
  ASSIGN_OR_RETURN(a.bias, r.BoolOr({"attention_bias"}, false));
  return absl::OkStatus();
}

absl::Status CheckAttentionShapes(const ConfigReader& r, const AttentionConfig& a) {
  if (a.num_heads % a.num_kv_heads != 0) {
    return r.Error({"num_attention_heads"},
                   absl::StrCat("(", a.num_heads, ") must be a multiple of num_key_value_heads (",
                                a.num_kv_heads, ")"));
  }
  if (a.rotary_dim % 2 != 0 || a.rotary_dim > a.head_dim || a.rotary_dim < 0) {
    return r.Error({"partial_rotary_factor"},
                   absl::StrCat("gives rotary dim ", a.rotary_dim, ", which must be even and <= head_dim ",
                                a.head_dim));
  }
  return absl::OkStatus();
}

absl::Status ReadRope(const ConfigReader& r, AttentionConfig& a, double default_factor) {
  const Json* params = r.Find({"rope_parameters"});
  if (params != nullptr && !params->is_object()) return r.Error({"rope_parameters"}, "must be an object");
  const ConfigReader rope = r.Nested({"rope_parameters"});
  ASSIGN_OR_RETURN(std::string type, rope.StringOr({"rope_type", "type"}, "default"));
  if (type != "default") {
    return rope.Error({"rope_type"}, absl::StrCat("is '", type, "'; only 'default' RoPE is supported"));
  }
  for (const std::string& key : rope.UnreadKeys()) {
    if (key != "rope_theta" && key != "partial_rotary_factor") {
      return rope.Error({key}, "is not supported (only rope_theta and partial_rotary_factor are)");
    }
  }
  // transformers 5 writes both places; the nested value wins, as it does there.
  ASSIGN_OR_RETURN(const double top_theta, r.FloatOr({"rope_theta"}, 10000.0));
  ASSIGN_OR_RETURN(const double top_factor, r.FloatOr({"partial_rotary_factor"}, default_factor));
  ASSIGN_OR_RETURN(double theta, rope.FloatOr({"rope_theta"}, top_theta));
  if (!(theta > 0 && std::isfinite(theta))) return r.Error({"rope_theta"}, "must be a finite number > 0");
  ASSIGN_OR_RETURN(double factor, rope.FloatOr({"partial_rotary_factor"}, top_factor));
  if (!(factor > 0 && factor <= 1)) return r.Error({"partial_rotary_factor"}, "must be in (0, 1]");
  a.rope_theta = static_cast<float>(theta);
  a.rotary_dim = static_cast<int64_t>(static_cast<double>(a.head_dim) * factor);
  return absl::OkStatus();
}

absl::Status RefuseUnlessDefault(const ConfigReader& r, Keys keys, const Json& allowed, absl::string_view why) {
  const Json* v = r.Find(keys);
  if (v == nullptr || *v == allowed) return absl::OkStatus();
  if (v->is_array() && v->empty() && allowed.is_array() && allowed.empty()) return absl::OkStatus();
  return r.Error(keys, absl::StrCat(why, " (", v->dump(), ")"));
}

std::string LayerPrefix(absl::string_view root, int64_t layer) { return absl::StrCat(root, "layers.", layer, "."); }

}  // namespace config_families

int64_t ModelConfig::CountBlocks(BlockKind kind) const {
  int64_t n = 0;
  for (const BlockSpec& b : blocks) n += b.kind == kind ? 1 : 0;
  return n;
}

std::string ModelConfig::LayerPattern() const {
  std::string pattern;
  int64_t last_layer = -1;
  for (const BlockSpec& b : blocks) {
    if (b.layer == last_layer) continue;  // the layer's first block names it
    last_layer = b.layer;
    switch (b.kind) {
      case BlockKind::kMamba: pattern += 'M'; break;
      case BlockKind::kAttention: pattern += '*'; break;
      case BlockKind::kMlp: pattern += '-'; break;
      case BlockKind::kMoe: pattern += 'E'; break;
    }
  }
  return pattern;
}

absl::string_view BlockKindName(BlockKind kind) {
  switch (kind) {
    case BlockKind::kMamba: return "mamba";
    case BlockKind::kAttention: return "attention";
    case BlockKind::kMlp: return "mlp";
    case BlockKind::kMoe: return "moe";
  }
  return "?";
}

absl::string_view ModelFamilyName(ModelFamily family) {
  switch (family) {
    case ModelFamily::kMamba2: return "mamba2";
    case ModelFamily::kBamba: return "bamba";
    case ModelFamily::kNemotronH: return "nemotron_h";
    case ModelFamily::kGraniteMoeHybrid: return "granitemoehybrid";
  }
  return "?";
}

absl::Status CheckServed(const ModelConfig& config) {
  if (config.unserved.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("Tessera does not serve this ", config.model_type,
                                                    " model yet: ", absl::StrJoin(config.unserved, "; ")));
}

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text, absl::string_view source) {
  ASSIGN_OR_RETURN(Json json, ParseConfigJson(json_text, source));
  if (!json.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  const ConfigReader r(json, std::string(source));

  ModelConfig c;
  ASSIGN_OR_RETURN(c.model_type, r.StringOr({"model_type"}, ""));
  if (c.model_type.empty() && r.Has({"ssm_cfg"}) && r.Has({"d_model"})) {
    c.model_type = "mamba2";  // mamba_ssm's own config.json has no model_type
    c.naming = WeightNaming::kMambaSsm;
  }
  if (c.model_type.empty()) return r.Error({"model_type"}, "is missing");
  RETURN_IF_ERROR(ReadCommon(r, c));
  if (c.model_type == "mamba2" && c.naming == WeightNaming::kMambaSsm) {
    c.family = ModelFamily::kMamba2;
    RETURN_IF_ERROR(config_families::ParseMambaSsm(r, c));
  } else if (c.model_type == "mamba2") {
    c.family = ModelFamily::kMamba2;
    RETURN_IF_ERROR(config_families::ParseMamba2(r, c));
  } else if (c.model_type == "bamba") {
    c.family = ModelFamily::kBamba;
    RETURN_IF_ERROR(config_families::ParseBamba(r, c));
  } else if (c.model_type == "nemotron_h") {
    c.family = ModelFamily::kNemotronH;
    RETURN_IF_ERROR(config_families::ParseNemotronH(r, c));
  } else if (c.model_type == "granitemoehybrid") {
    c.family = ModelFamily::kGraniteMoeHybrid;
    RETURN_IF_ERROR(config_families::ParseGraniteMoeHybrid(r, c));
  } else {
    return r.Error({"model_type"}, absl::StrCat("'", c.model_type,
                                                "' is not supported (mamba2, bamba, nemotron_h, granitemoehybrid; "
                                                "or mamba_ssm's own config.json)"));
  }
  if (c.num_layers > kMaxLayers) {
    return r.Error({"layers_block_type"}, absl::StrCat("lists ", c.num_layers, " layers; at most ", kMaxLayers));
  }
  RETURN_IF_ERROR(ApplyKeyLists(r, c));
  if (c.lm_head_weight.empty()) c.lm_head_weight = c.tie_word_embeddings ? c.embedding_weight : "lm_head.weight";
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseModelConfig(text.str(), path);
}

}  // namespace tessera
