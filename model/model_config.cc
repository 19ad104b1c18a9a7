// Hugging Face config.json → ModelConfig, one function per family, every key
// looked up through one reader that knows the aliases and names what is wrong.
#include "model/model_config.h"

#include <cmath>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace tessera {
namespace {

using Json = nlohmann::json;
using Keys = std::initializer_list<absl::string_view>;

// Looks keys up in a config object; the first present, non-null alias wins.
class ConfigReader {
 public:
  ConfigReader(const Json& json, absl::string_view source) : json_(json), source_(source) {}

  const Json* Find(Keys keys) const {
    for (absl::string_view key : keys) {
      auto it = json_.find(std::string(key));
      if (it != json_.end() && !it->is_null()) return &*it;
    }
    return nullptr;
  }

  absl::Status Error(Keys keys, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": key '", *keys.begin(), "' ", what));
  }

  absl::StatusOr<int64_t> Int(Keys keys) const {
    const Json* v = Find(keys);
    if (v == nullptr) return Error(keys, "is missing");
    if (!v->is_number_integer()) return Error(keys, absl::StrCat("must be an integer, got ", v->dump()));
    return v->get<int64_t>();
  }

  absl::StatusOr<int64_t> PositiveInt(Keys keys) const {
    ASSIGN_OR_RETURN(int64_t value, Int(keys));
    if (value <= 0) return Error(keys, absl::StrCat("must be > 0. Given: ", value));
    return value;
  }

  absl::StatusOr<int64_t> PositiveIntOr(Keys keys, int64_t fallback) const {
    if (Find(keys) == nullptr) return fallback;
    return PositiveInt(keys);
  }

  absl::StatusOr<double> Float(Keys keys) const {
    const Json* v = Find(keys);
    if (v == nullptr) return Error(keys, "is missing");
    return FloatValue(*v, keys);
  }

  absl::StatusOr<double> FloatOr(Keys keys, double fallback) const {
    if (Find(keys) == nullptr) return fallback;
    return Float(keys);
  }

  absl::StatusOr<bool> BoolOr(Keys keys, bool fallback) const {
    const Json* v = Find(keys);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) return Error(keys, absl::StrCat("must be true or false, got ", v->dump()));
    return v->get<bool>();
  }

  absl::StatusOr<std::string> StringOr(Keys keys, std::string fallback) const {
    const Json* v = Find(keys);
    if (v == nullptr) return fallback;
    if (!v->is_string()) return Error(keys, absl::StrCat("must be a string, got ", v->dump()));
    return v->get<std::string>();
  }

  // A number, or transformers' {"__float__": "Infinity"} spelling.
  absl::StatusOr<double> FloatValue(const Json& v, Keys keys) const {
    if (v.is_number()) return v.get<double>();
    if (v.is_object() && v.size() == 1 && v.contains("__float__") && v["__float__"].is_string()) {
      const std::string s = v["__float__"].get<std::string>();
      if (s == "Infinity" || s == "inf") return std::numeric_limits<double>::infinity();
      if (s == "-Infinity" || s == "-inf") return -std::numeric_limits<double>::infinity();
    }
    return Error(keys, absl::StrCat("must be a number, got ", v.dump()));
  }

  absl::string_view source() const { return source_; }

 private:
  const Json& json_;
  absl::string_view source_;
};

absl::Status ReadTimeStepLimit(const ConfigReader& r, MambaConfig& m) {
  m.dt_min = 0.0f;
  m.dt_max = std::numeric_limits<float>::infinity();
  const Keys keys = {"time_step_limit"};
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

absl::Status CheckAttentionShapes(const ConfigReader& r, const AttentionConfig& a) {
  if (a.num_heads % a.num_kv_heads != 0) {
    return r.Error({"num_attention_heads"},
                   absl::StrCat("(", a.num_heads, ") must be a multiple of num_key_value_heads (",
                                a.num_kv_heads, ")"));
  }
  if (a.rotary_dim % 2 != 0 || a.rotary_dim > a.head_dim) {
    return r.Error({"partial_rotary_factor"},
                   absl::StrCat("gives rotary dim ", a.rotary_dim, ", which must be even and <= head_dim ",
                                a.head_dim));
  }
  return absl::OkStatus();
}

absl::Status ReadCommon(const ConfigReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(c.vocab_size, r.PositiveInt({"vocab_size"}));
  ASSIGN_OR_RETURN(c.hidden_size, r.PositiveInt({"hidden_size", "d_model"}));
  ASSIGN_OR_RETURN(c.num_layers, r.PositiveIntOr({"num_hidden_layers", "n_layer"}, 0));
  ASSIGN_OR_RETURN(double eps, r.FloatOr({"rms_norm_eps", "layer_norm_epsilon", "norm_eps"}, 1e-5));
  c.norm_eps = static_cast<float>(eps);
  ASSIGN_OR_RETURN(c.tie_word_embeddings, r.BoolOr({"tie_word_embeddings"}, false));
  ASSIGN_OR_RETURN(c.max_position_embeddings, r.PositiveIntOr({"max_position_embeddings"}, 0));
  if (const Json* eos = r.Find({"eos_token_id"}); eos != nullptr && eos->is_number_integer()) {
    c.eos_token_id = eos->get<int64_t>();
  }
  return absl::OkStatus();
}

// RoPE settings from `rope_parameters` (transformers 5), `rope_scaling`, or top-level keys.
absl::Status ReadRope(const ConfigReader& r, AttentionConfig& a) {
  const Json* params = r.Find({"rope_parameters"});
  const Json empty = Json::object();
  const ConfigReader rope(params != nullptr && params->is_object() ? *params : empty, r.source());
  ASSIGN_OR_RETURN(std::string type, rope.StringOr({"rope_type", "type"}, "default"));
  if (type != "default") {
    return r.Error({"rope_parameters"}, absl::StrCat("has rope_type '", type, "', only 'default' is supported"));
  }
  if (const Json* scaling = r.Find({"rope_scaling"}); scaling != nullptr) {
    return r.Error({"rope_scaling"}, "is set; RoPE scaling is not supported");
  }
  ASSIGN_OR_RETURN(double theta, rope.FloatOr({"rope_theta"}, -1));
  if (theta < 0) {
    ASSIGN_OR_RETURN(theta, r.FloatOr({"rope_theta"}, 10000.0));
  }
  ASSIGN_OR_RETURN(double factor, rope.FloatOr({"partial_rotary_factor"}, -1));
  if (factor < 0) {
    ASSIGN_OR_RETURN(factor, r.FloatOr({"partial_rotary_factor"}, 1.0));
  }
  if (!(factor > 0 && factor <= 1)) return r.Error({"partial_rotary_factor"}, "must be in (0, 1]");
  a.rope_theta = static_cast<float>(theta);
  a.rotary_dim = static_cast<int64_t>(static_cast<double>(a.head_dim) * factor);
  return absl::OkStatus();
}

absl::Status ReadAttention(const ConfigReader& r, const ModelConfig& c, AttentionConfig& a) {
  ASSIGN_OR_RETURN(a.num_heads, r.PositiveInt({"num_attention_heads"}));
  ASSIGN_OR_RETURN(a.num_kv_heads, r.PositiveIntOr({"num_key_value_heads"}, a.num_heads));
  ASSIGN_OR_RETURN(a.head_dim,
                   r.PositiveIntOr({"head_dim", "attention_head_dim"}, c.hidden_size / a.num_heads));
  ASSIGN_OR_RETURN(a.bias, r.BoolOr({"attention_bias"}, false));
  return absl::OkStatus();
}

std::string LayerPrefix(absl::string_view root, int64_t layer) {
  return absl::StrCat(root, "layers.", layer, ".");
}

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
  ASSIGN_OR_RETURN(bool rms_norm, r.BoolOr({"rms_norm"}, true));
  if (!rms_norm) return r.Error({"rms_norm"}, "is false; only RMSNorm Mamba-2 models are supported");
  ASSIGN_OR_RETURN(bool norm_before_gate, r.BoolOr({"norm_before_gate"}, false));
  if (norm_before_gate) return r.Error({"norm_before_gate"}, "is true; only gate-then-norm is supported");
  m.norm_per_group = false;
  RETURN_IF_ERROR(ReadTimeStepLimit(r, m));
  ASSIGN_OR_RETURN(double expand, r.FloatOr({"expand"}, 2.0));
  RETURN_IF_ERROR(CheckMambaShapes(r, m, static_cast<int64_t>(expand * c.hidden_size), {"num_heads"}));

  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = LayerPrefix("backbone.", i);
    c.blocks.push_back({BlockKind::kMamba, i, p + "norm.weight", p + "mixer."});
  }
  c.embedding_weight = "backbone.embeddings.weight";
  c.final_norm_weight = "backbone.norm_f.weight";
  return absl::OkStatus();
}

absl::Status ParseBamba(const ConfigReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(c.num_layers, r.PositiveInt({"num_hidden_layers"}));
  MambaConfig& m = c.mamba;
  ASSIGN_OR_RETURN(m.num_heads, r.PositiveInt({"mamba_n_heads"}));
  ASSIGN_OR_RETURN(double expand, r.FloatOr({"mamba_expand"}, 2.0));
  const int64_t d_inner = static_cast<int64_t>(expand * c.hidden_size);
  if (const Json* d_head = r.Find({"mamba_d_head"}); d_head != nullptr && d_head->is_string()) {
    m.head_dim = d_inner / m.num_heads;  // "auto"
  } else {
    ASSIGN_OR_RETURN(m.head_dim, r.PositiveInt({"mamba_d_head"}));
  }
  ASSIGN_OR_RETURN(m.num_groups, r.PositiveIntOr({"mamba_n_groups"}, 1));
  ASSIGN_OR_RETURN(m.state_size, r.PositiveInt({"mamba_d_state"}));
  ASSIGN_OR_RETURN(m.conv_kernel, r.PositiveIntOr({"mamba_d_conv"}, 4));
  ASSIGN_OR_RETURN(m.chunk_size, r.PositiveIntOr({"mamba_chunk_size"}, 256));
  ASSIGN_OR_RETURN(m.conv_bias, r.BoolOr({"mamba_conv_bias"}, true));
  ASSIGN_OR_RETURN(m.proj_bias, r.BoolOr({"mamba_proj_bias"}, false));
  m.norm_per_group = false;
  RETURN_IF_ERROR(ReadTimeStepLimit(r, m));
  RETURN_IF_ERROR(CheckMambaShapes(r, m, d_inner, {"mamba_n_heads"}));

  RETURN_IF_ERROR(ReadAttention(r, c, c.attention));
  RETURN_IF_ERROR(ReadRope(r, c.attention));
  RETURN_IF_ERROR(CheckAttentionShapes(r, c.attention));

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

// nemotron_h layer kinds: `layers_block_type` (list) or `hybrid_override_pattern` (string).
absl::StatusOr<std::vector<BlockKind>> ReadNemotronLayerKinds(const ConfigReader& r, int64_t num_layers) {
  std::vector<BlockKind> kinds;
  if (const Json* list = r.Find({"layers_block_type"}); list != nullptr) {
    if (!list->is_array()) return r.Error({"layers_block_type"}, "must be a list of strings");
    for (const Json& v : *list) {
      const std::string name = v.is_string() ? v.get<std::string>() : v.dump();
      if (name == "mamba" || name == "linear_attention") {
        kinds.push_back(BlockKind::kMamba);
      } else if (name == "attention" || name == "full_attention") {
        kinds.push_back(BlockKind::kAttention);
      } else if (name == "mlp") {
        kinds.push_back(BlockKind::kMlp);
      } else if (name == "moe") {
        return r.Error({"layers_block_type"}, "has 'moe' layers, which are not supported yet");
      } else {
        return r.Error({"layers_block_type"}, absl::StrCat("has unknown layer type '", name, "'"));
      }
    }
  } else if (const Json* pattern = r.Find({"hybrid_override_pattern"}); pattern != nullptr) {
    if (!pattern->is_string()) return r.Error({"hybrid_override_pattern"}, "must be a string");
    for (char ch : pattern->get<std::string>()) {
      switch (ch) {
        case 'M': kinds.push_back(BlockKind::kMamba); break;
        case '*': kinds.push_back(BlockKind::kAttention); break;
        case '-': kinds.push_back(BlockKind::kMlp); break;
        case 'E': return r.Error({"hybrid_override_pattern"}, "has MoE layers ('E'), which are not supported yet");
        default:
          return r.Error({"hybrid_override_pattern"}, absl::StrCat("has unknown layer symbol '", std::string(1, ch), "'"));
      }
    }
  } else {
    return r.Error({"layers_block_type"}, "is missing (nor is hybrid_override_pattern given)");
  }
  if (static_cast<int64_t>(kinds.size()) != num_layers) {
    return r.Error({"layers_block_type"}, absl::StrCat("lists ", kinds.size(), " layers, num_hidden_layers is ",
                                                       num_layers));
  }
  return kinds;
}

absl::Status ParseNemotronH(const ConfigReader& r, ModelConfig& c) {
  // The layer list may define the layer count (num_hidden_layers is then derived).
  if (r.Find({"num_hidden_layers"}) == nullptr) {
    const Json* list = r.Find({"layers_block_type"});
    const Json* pattern = r.Find({"hybrid_override_pattern"});
    if (list != nullptr && list->is_array()) c.num_layers = static_cast<int64_t>(list->size());
    if (pattern != nullptr && pattern->is_string()) c.num_layers = static_cast<int64_t>(pattern->get<std::string>().size());
  }
  ASSIGN_OR_RETURN(std::vector<BlockKind> kinds, ReadNemotronLayerKinds(r, c.num_layers));

  MambaConfig& m = c.mamba;
  ASSIGN_OR_RETURN(m.num_heads, r.PositiveInt({"mamba_num_heads"}));
  ASSIGN_OR_RETURN(m.head_dim, r.PositiveInt({"mamba_head_dim"}));
  ASSIGN_OR_RETURN(m.num_groups, r.PositiveIntOr({"n_groups", "mamba_n_groups"}, 1));
  ASSIGN_OR_RETURN(m.state_size, r.PositiveInt({"ssm_state_size", "mamba_d_state"}));
  ASSIGN_OR_RETURN(m.conv_kernel, r.PositiveIntOr({"conv_kernel", "mamba_d_conv"}, 4));
  ASSIGN_OR_RETURN(m.chunk_size, r.PositiveIntOr({"chunk_size", "mamba_chunk_size"}, 256));
  ASSIGN_OR_RETURN(m.conv_bias, r.BoolOr({"use_conv_bias"}, true));
  ASSIGN_OR_RETURN(m.proj_bias, r.BoolOr({"mamba_proj_bias", "use_bias"}, false));
  m.norm_per_group = true;
  RETURN_IF_ERROR(ReadTimeStepLimit(r, m));
  RETURN_IF_ERROR(CheckMambaShapes(r, m, 0, {"mamba_num_heads"}));
  ASSIGN_OR_RETURN(std::string mamba_act, r.StringOr({"mamba_hidden_act"}, "silu"));
  if (mamba_act != "silu" && mamba_act != "swish") {
    return r.Error({"mamba_hidden_act"}, absl::StrCat("'", mamba_act, "' is not supported (silu)"));
  }

  RETURN_IF_ERROR(ReadAttention(r, c, c.attention));
  c.attention.rotary_dim = 0;  // nemotron_h attention has no positional encoding
  RETURN_IF_ERROR(CheckAttentionShapes(r, c.attention));

  ASSIGN_OR_RETURN(c.mlp.intermediate_size, r.PositiveInt({"intermediate_size"}));
  ASSIGN_OR_RETURN(c.mlp.bias, r.BoolOr({"mlp_bias"}, false));
  ASSIGN_OR_RETURN(std::string act, r.StringOr({"mlp_hidden_act"}, "relu2"));
  if (act != "relu2") return r.Error({"mlp_hidden_act"}, absl::StrCat("'", act, "' is not supported (relu2)"));
  c.mlp.activation = MlpActivation::kRelu2;

  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = LayerPrefix("backbone.", i);
    c.blocks.push_back({kinds[i], i, p + "norm.weight", p + "mixer."});
  }
  c.embedding_weight = "backbone.embeddings.weight";
  c.final_norm_weight = "backbone.norm_f.weight";
  return absl::OkStatus();
}

}  // namespace

int64_t ModelConfig::CountBlocks(BlockKind kind) const {
  int64_t n = 0;
  for (const BlockSpec& b : blocks) n += b.kind == kind ? 1 : 0;
  return n;
}

absl::string_view BlockKindName(BlockKind kind) {
  switch (kind) {
    case BlockKind::kMamba: return "mamba";
    case BlockKind::kAttention: return "attention";
    case BlockKind::kMlp: return "mlp";
  }
  return "?";
}

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text, absl::string_view source) {
  Json json = Json::parse(json_text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  if (!json.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  const ConfigReader r(json, source);

  ModelConfig c;
  ASSIGN_OR_RETURN(c.model_type, r.StringOr({"model_type"}, ""));
  if (c.model_type.empty()) return r.Error({"model_type"}, "is missing");
  RETURN_IF_ERROR(ReadCommon(r, c));
  if (c.model_type == "mamba2") {
    c.family = ModelFamily::kMamba2;
    RETURN_IF_ERROR(ParseMamba2(r, c));
  } else if (c.model_type == "bamba") {
    c.family = ModelFamily::kBamba;
    RETURN_IF_ERROR(ParseBamba(r, c));
  } else if (c.model_type == "nemotron_h") {
    c.family = ModelFamily::kNemotronH;
    RETURN_IF_ERROR(ParseNemotronH(r, c));
  } else {
    return r.Error({"model_type"}, absl::StrCat("'", c.model_type,
                                                "' is not supported (mamba2, bamba, nemotron_h)"));
  }
  c.lm_head_weight = c.tie_word_embeddings ? c.embedding_weight : "lm_head.weight";
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
