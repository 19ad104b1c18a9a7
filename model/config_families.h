// The per-family readers behind ParseModelConfig (model_config.cc), and the
// pieces they share. Internal to model/: one file per family, each turning its
// spellings into ModelConfig and naming the key of anything it cannot take.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "model/config_json.h"
#include "model/model_config.h"

namespace tessera::config_families {

using Keys = ConfigReader::Keys;

absl::Status ParseMamba2(const ConfigReader& r, ModelConfig& c);
// mamba_ssm's own config.json (d_model, n_layer, ssm_cfg, ...): no model_type.
absl::Status ParseMambaSsm(const ConfigReader& r, ModelConfig& c);
absl::Status ParseBamba(const ConfigReader& r, ModelConfig& c);
absl::Status ParseNemotronH(const ConfigReader& r, ModelConfig& c);
absl::Status ParseGraniteMoeHybrid(const ConfigReader& r, ModelConfig& c);

// Shared readers.
// The Mamba-2 mixer as bamba and granitemoehybrid spell it (mamba_n_heads,
// mamba_d_head "auto", mamba_expand, ...), gated norm over the whole d_inner.
absl::Status ReadMambaPrefixedMixer(const ConfigReader& r, ModelConfig& c);
absl::Status ReadTimeStepLimit(const ConfigReader& r, Keys keys, MambaConfig& m);
absl::Status CheckMambaShapes(const ConfigReader& r, const MambaConfig& m, int64_t expected_d_inner, Keys heads_key);
absl::Status ReadAttentionHeads(const ConfigReader& r, const ModelConfig& c, AttentionConfig& a);
absl::Status CheckAttentionShapes(const ConfigReader& r, const AttentionConfig& a);
// RoPE theta from `rope_parameters` (transformers 5) or the top level, with
// `default_factor` of the head rotated unless the config says otherwise.
// Refuses every scaling type but "default" by name.
absl::Status ReadRope(const ConfigReader& r, AttentionConfig& a, double default_factor);
// Refuses `key` when it is present, non-null and not `allowed` (a JSON value).
absl::Status RefuseUnlessDefault(const ConfigReader& r, Keys keys, const Json& allowed, absl::string_view why);
std::string LayerPrefix(absl::string_view root, int64_t layer);

}  // namespace tessera::config_families
