// The lists, from transformers 4.40 ... 5.x's configuration_<family>.py and
// mamba_ssm's MambaConfig: every key a family's config class defines that its
// parser does not read is here, with the reason it may be ignored, or refused.
#include "model/config_keys.h"

namespace tessera {
namespace {

constexpr const char* kCommonIgnored[] = {
    // bookkeeping and serialization
    "architectures", "auto_map", "dtype", "torch_dtype", "transformers_version", "_name_or_path", "model_type",
    "tokenizer_class", "id2label", "label2id", "problem_type", "return_dict", "output_attentions",
    "output_hidden_states", "torchscript", "is_encoder_decoder", "is_decoder", "add_cross_attention",
    "tie_encoder_decoder", "pruned_heads", "chunk_size_feed_forward", "finetuning_task", "task_specific_params",
    // token ids other than eos (the tokenizer owns them)
    "bos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    // training, initialization, generation runtime
    "use_cache", "initializer_range", "attention_dropout", "hidden_dropout", "num_logits_to_keep",
};

constexpr const char* kMamba2Ignored[] = {
    "time_step_min", "time_step_max", "time_step_floor", "time_step_init_scheme", "time_step_scale",
    "time_step_rank", "rescale_prenorm_residual", "residual_in_fp32",
    // transformers' Mamba2 gates before its norm whatever this says (Mamba-Codestral sets true)
    "norm_before_gate",
    // the mixer width is expand x hidden_size; Mamba-Codestral also writes it out
    "intermediate_size",
};

constexpr const char* kMambaSsmIgnored[] = {
    "residual_in_fp32", "fused_add_norm",
    // the settings of attention layers, of which attn_layer_idx lists none (else it is refused)
    "attn_cfg",
};

constexpr const char* kBambaIgnored[] = {
    "time_step_min", "time_step_max", "time_step_floor", "z_loss_coefficient", "use_mamba_kernels",
    // Mamba-1's dt projection rank: Mamba-2 has none (Bamba-9B still writes it)
    "mamba_dt_rank",
};

constexpr const char* kNemotronHIgnored[] = {
    "use_mamba_kernels", "time_step_min", "time_step_max", "time_step_floor", "mamba_dt_min", "mamba_dt_max",
    "mamba_dt_init_floor", "mamba_ssm_cache_dtype", "rescale_prenorm_residual", "residual_in_fp32",
    // multi-token-prediction heads: not part of the forward pass that predicts the next token
    "num_nextn_predict_layers", "mtp_layers_block_type", "mtp_hybrid_override_pattern",
    // an overlap of communication in training, not a change of the math
    "moe_shared_expert_overlap",
    // Mamba-1's dt projection rank; and RoPE keys, which nemotron_h's attention (no positional encoding) never reads
    "time_step_rank", "rope_theta", "partial_rotary_factor", "rope_parameters",
};

constexpr const char* kGraniteIgnored[] = {
    "output_router_logits", "router_aux_loss_coef", "time_step_min", "time_step_max", "time_step_floor",
    "use_mamba_kernels",
};

constexpr RefusedKey kQuantization = {"quantization_config", "null", R"({"quant_method": "fp8"})",
                                      "is set; quantized checkpoints are not supported"};
constexpr RefusedKey kRopeScaling = {"rope_scaling", "null", R"({"rope_type": "linear", "factor": 2.0})",
                                     "is set; RoPE scaling is not supported"};

constexpr RefusedKey kMamba2Refused[] = {
    kQuantization,
    {"rms_norm", "true", "false", "is false; only RMSNorm Mamba-2 models are supported"},
    {"hidden_act", R"("silu")", R"("gelu")", "is not silu; only SiLU Mamba-2 mixers are supported"},
};

constexpr RefusedKey kMambaSsmRefused[] = {
    kQuantization,
    {"rms_norm", "true", "false", "is false; only RMSNorm Mamba-2 models are supported"},
    {"attn_layer_idx", "[]", "[3]",
     "lists attention layers; mamba_ssm's MHA layers (fused qkv) are not supported: convert the checkpoint to "
     "transformers' format first"},
    {"d_intermediate", "0", "1024", "is set; mamba_ssm's gated MLP layers are not supported"},
};

constexpr RefusedKey kBambaRefused[] = {kQuantization, kRopeScaling};

constexpr RefusedKey kNemotronHRefused[] = {
    kQuantization,
    {"sliding_window", "null", "4096", "is set; sliding-window attention is not supported"},
};

constexpr RefusedKey kGraniteRefused[] = {kQuantization, kRopeScaling};

}  // namespace

absl::Span<const char* const> CommonIgnoredConfigKeys() { return kCommonIgnored; }

absl::Span<const char* const> IgnoredConfigKeys(ModelFamily family, WeightNaming naming) {
  switch (family) {
    case ModelFamily::kMamba2:
      return naming == WeightNaming::kMambaSsm ? absl::Span<const char* const>(kMambaSsmIgnored)
                                               : absl::Span<const char* const>(kMamba2Ignored);
    case ModelFamily::kBamba:
      return kBambaIgnored;
    case ModelFamily::kNemotronH:
      return kNemotronHIgnored;
    case ModelFamily::kGraniteMoeHybrid:
      return kGraniteIgnored;
  }
  return {};
}

absl::Span<const RefusedKey> RefusedConfigKeys(ModelFamily family, WeightNaming naming) {
  switch (family) {
    case ModelFamily::kMamba2:
      return naming == WeightNaming::kMambaSsm ? absl::Span<const RefusedKey>(kMambaSsmRefused)
                                               : absl::Span<const RefusedKey>(kMamba2Refused);
    case ModelFamily::kBamba:
      return kBambaRefused;
    case ModelFamily::kNemotronH:
      return kNemotronHRefused;
    case ModelFamily::kGraniteMoeHybrid:
      return kGraniteRefused;
  }
  return {};
}

}  // namespace tessera
