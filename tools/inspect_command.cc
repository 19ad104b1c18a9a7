// `tessera inspect MODEL_DIR [--json] [--tokenizer PATH]`: what Tessera will
// run for a model directory, read from config.json, the safetensors headers
// (never the tensor data) and tokenizer.json. Exit 0 when Tessera can serve
// it (weights may be absent: it says so), 2 with the reasons when it cannot
// (a config it cannot read or does not serve yet, tensors missing or of the
// wrong shape or dtype, a tokenizer it refuses), never a crash.
#include "tools/inspect_command.h"

#include <cmath>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "model/inspection.h"
#include "nlohmann/json.hpp"
#include "tools/cli/cli_flags.h"

namespace tessera {
namespace {

using Json = nlohmann::ordered_json;

constexpr FlagSpec kInspectFlags[] = {
    {"model", true, "model directory (or give it as the first argument)"},
    {"json", false, "print one JSON object instead of text"},
    {"tokenizer", true, "tokenizer.json to check (default: MODEL_DIR/tokenizer.json, if any)"},
};

constexpr char kSummary[] =
    "Prints what Tessera will run for a model directory: family, layers, attention and Mamba shapes,\n"
    "MoE routing, multipliers, context, parameters, K/V and state bytes, tensors and tokenizer.\n"
    "Exit 0 when Tessera can serve it, 2 with the reasons when it cannot.";

struct TokenizerCheck {
  std::string path;    // empty: none found
  std::string status;  // "ok", "absent" or why it is refused
  int64_t vocab_size = 0;
  bool ok() const { return status == "ok" || status == "absent"; }
};

TokenizerCheck CheckTokenizer(const std::string& path, const ModelConfig& config) {
  TokenizerCheck t;
  if (path.empty() || !std::filesystem::exists(path)) {
    t.status = "absent";
    return t;
  }
  t.path = path;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromFile(path);
  if (!tokenizer.ok()) {
    t.status = std::string(tokenizer.status().message());
    return t;
  }
  t.vocab_size = (*tokenizer)->vocab_size();
  t.status = t.vocab_size <= config.vocab_size
                 ? "ok"
                 : absl::StrCat("its ids reach ", t.vocab_size - 1, ", past the model's vocab_size ", config.vocab_size);
  return t;
}

std::string MoeRoutingName(MoeRouting routing) {
  switch (routing) {
    case MoeRouting::kSigmoidBiasedTopK: return "sigmoid scores, correction bias for the choice, group-limited top-k";
    case MoeRouting::kSoftmaxTopK: return "top-k of the router logits, softmax over those k";
  }
  return "?";
}

std::string ActivationName(MlpActivation a) {
  switch (a) {
    case MlpActivation::kSwiGlu: return "swiglu";
    case MlpActivation::kRelu2: return "relu2";
  }
  return "?";
}

std::vector<std::string> Reasons(const Inspection& in, const TokenizerCheck& tokenizer) {
  std::vector<std::string> reasons = in.config.unserved;
  const WeightsInspection& w = in.weights;
  if (w.present) {
    if (!w.missing.empty()) reasons.push_back(absl::StrCat(w.missing.size(), " tensors missing, e.g. ", w.missing[0]));
    if (!w.wrong_shape.empty()) reasons.push_back(absl::StrCat("tensor ", w.wrong_shape[0]));
    if (!w.bad_dtype.empty()) reasons.push_back(absl::StrCat("tensor dtype Tessera cannot use: ", w.bad_dtype[0]));
  } else if (!w.absent) {  // weights that are there but unreadable (PyTorch pickles, a broken header)
    reasons.push_back(w.status);
  }
  if (!tokenizer.ok()) reasons.push_back(absl::StrCat("tokenizer ", tokenizer.path, ": ", tokenizer.status));
  return reasons;
}

Json ToJson(const Inspection& in, const TokenizerCheck& tokenizer, const std::vector<std::string>& reasons) {
  const ModelConfig& c = in.config;
  Json j;
  j["model_dir"] = in.model_dir;
  j["model_type"] = c.model_type;
  j["config_format"] = c.naming == WeightNaming::kMambaSsm ? "mamba_ssm" : "transformers";
  j["servable"] = reasons.empty();
  j["reasons"] = reasons;
  j["layers"] = c.LayerPattern();
  j["num_layers"] = c.num_layers;
  j["hidden_size"] = c.hidden_size;
  j["vocab_size"] = c.vocab_size;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["norm_eps"] = c.norm_eps;
  if (c.CountBlocks(BlockKind::kAttention) > 0) {
    j["attention"] = {{"num_heads", c.attention.num_heads},
                      {"num_kv_heads", c.attention.num_kv_heads},
                      {"head_dim", c.attention.head_dim},
                      {"rotary_dim", c.attention.rotary_dim},
                      {"rope_theta", c.attention.rotary_dim > 0 ? Json(c.attention.rope_theta) : Json(nullptr)},
                      {"softmax_scale", c.attention.softmax_scale > 0 ? Json(c.attention.softmax_scale) : Json(nullptr)},
                      {"bias", c.attention.bias}};
  }
  if (c.CountBlocks(BlockKind::kMamba) > 0) {
    const MambaConfig& m = c.mamba;
    j["mamba"] = {{"num_heads", m.num_heads},   {"head_dim", m.head_dim},       {"state_size", m.state_size},
                  {"groups", m.num_groups},     {"chunk_size", m.chunk_size},   {"conv_kernel", m.conv_kernel},
                  {"dt_min", m.dt_min},         {"dt_max", std::isinf(m.dt_max) ? Json("inf") : Json(m.dt_max)},
                  {"norm_group_size", m.norm_group_size()}};
  }
  if (c.CountBlocks(BlockKind::kMlp) > 0) {
    j["mlp"] = {{"intermediate_size", c.mlp.intermediate_size}, {"activation", ActivationName(c.mlp.activation)}};
  }
  if (c.CountBlocks(BlockKind::kMoe) > 0) {
    const MoeConfig& moe = c.moe;
    j["moe"] = {{"experts", moe.experts},
                {"top_k", moe.top_k},
                {"expert_intermediate_size", moe.expert_intermediate_size},
                {"shared_experts", moe.shared_experts},
                {"shared_intermediate_size", moe.shared_intermediate_size},
                {"routing", moe.routing == MoeRouting::kSigmoidBiasedTopK ? "sigmoid_biased" : "softmax_topk"},
                {"n_group", moe.n_group},
                {"topk_group", moe.topk_group},
                {"norm_topk_prob", moe.norm_topk_prob},
                {"routed_scaling_factor", moe.routed_scaling_factor},
                {"latent_size", moe.latent_size},
                {"activation", ActivationName(moe.activation)}};
  }
  if (c.family == ModelFamily::kGraniteMoeHybrid) {
    j["multipliers"] = {{"embedding", c.multipliers.embedding},
                        {"residual", c.multipliers.residual},
                        {"attention", c.attention.softmax_scale},
                        {"logits_scaling", c.multipliers.logits_scaling}};
  }
  j["context"] = {{"max_position_embeddings", c.max_position_embeddings}};
  const WeightsInspection& w = in.weights;
  j["weights"] = {{"present", w.present},
                  {"status", w.status},
                  {"tensors", w.tensors},
                  {"parameters", w.present ? w.parameters : w.expected_parameters},
                  {"parameters_counted_from", w.present ? "checkpoint" : "config (served layers only)"},
                  {"bytes_by_dtype", w.bytes_by_dtype},
                  {"missing", w.missing},
                  {"unexpected", w.unexpected},
                  {"wrong_shape", w.wrong_shape},
                  {"bad_dtype", w.bad_dtype},
                  {"unserved_layer_tensors", w.unserved_layer_tensors}};
  j["kv_bytes_per_token_bf16"] = in.kv_bytes_per_token_bf16;
  j["state_bytes_per_request"] = in.state_bytes_per_request;
  j["tokenizer"] = {{"path", tokenizer.path}, {"status", tokenizer.status}, {"vocab_size", tokenizer.vocab_size}};
  j["unread_config_keys"] = c.unread_keys;
  return j;
}

std::string Bytes(int64_t bytes) {
  if (bytes >= 1000000000) return absl::StrFormat("%.2f GB", static_cast<double>(bytes) / 1e9);
  if (bytes >= 1000000) return absl::StrFormat("%.2f MB", static_cast<double>(bytes) / 1e6);
  return absl::StrFormat("%.1f kB", static_cast<double>(bytes) / 1e3);
}

void PrintText(const Inspection& in, const TokenizerCheck& tokenizer, const std::vector<std::string>& reasons,
               std::ostream& out) {
  const ModelConfig& c = in.config;
  out << "model:       " << in.model_dir << "\n";
  out << "family:      " << c.model_type
      << (c.naming == WeightNaming::kMambaSsm ? " (mamba_ssm's own config and tensor names)" : "") << "\n";
  out << "layers:      " << c.num_layers << "  " << c.LayerPattern() << "   (M Mamba-2, * attention, - MLP, E MoE)\n";
  out << "hidden:      " << c.hidden_size << ", vocab " << c.vocab_size
      << ", tied embeddings " << (c.tie_word_embeddings ? "yes" : "no") << ", norm eps " << c.norm_eps << "\n";
  if (c.CountBlocks(BlockKind::kAttention) > 0) {
    const AttentionConfig& a = c.attention;
    out << "attention:   " << a.num_heads << " heads, " << a.num_kv_heads << " kv heads, head dim " << a.head_dim
        << ", " << (a.rotary_dim > 0 ? absl::StrCat("RoPE on ", a.rotary_dim, " dims (theta ", a.rope_theta, ")")
                                     : std::string("no positional encoding"))
        << ", softmax scale "
        << (a.softmax_scale > 0 ? absl::StrCat(a.softmax_scale) : absl::StrCat("1/sqrt(", a.head_dim, ")")) << "\n";
  }
  if (c.CountBlocks(BlockKind::kMamba) > 0) {
    const MambaConfig& m = c.mamba;
    out << "mamba:       " << m.num_heads << " heads x " << m.head_dim << ", state " << m.state_size << ", groups "
        << m.num_groups << ", chunk " << m.chunk_size << ", conv " << m.conv_kernel << ", dt in [" << m.dt_min
        << ", " << m.dt_max << "], gated norm over " << m.norm_group_size() << " channels\n";
  }
  if (c.CountBlocks(BlockKind::kMlp) > 0) {
    out << "mlp:         " << ActivationName(c.mlp.activation) << ", intermediate " << c.mlp.intermediate_size << "\n";
  }
  if (c.CountBlocks(BlockKind::kMoe) > 0) {
    const MoeConfig& moe = c.moe;
    out << "moe:         " << moe.experts << " experts (intermediate " << moe.expert_intermediate_size << "), top "
        << moe.top_k << ", " << moe.shared_experts << " shared (intermediate " << moe.shared_intermediate_size
        << "), " << ActivationName(moe.activation) << "; routing: " << MoeRoutingName(moe.routing);
    if (moe.routing == MoeRouting::kSigmoidBiasedTopK) {
      out << " (groups " << moe.topk_group << " of " << moe.n_group << ", renormalized "
          << (moe.norm_topk_prob ? "yes" : "no") << ", scaled by " << moe.routed_scaling_factor << ")";
    }
    if (moe.latent_size > 0) out << "; latent size " << moe.latent_size;
    out << "\n";
  }
  if (c.family == ModelFamily::kGraniteMoeHybrid) {
    out << "multipliers: embedding x" << c.multipliers.embedding << ", residual x" << c.multipliers.residual
        << ", attention scale " << c.attention.softmax_scale << ", logits / " << c.multipliers.logits_scaling << "\n";
  }
  out << "context:     "
      << (c.max_position_embeddings > 0 ? absl::StrCat("trained for ", c.max_position_embeddings,
                                                       " tokens (max_position_embeddings)")
                                        : std::string("no limit stated"))
      << "; --max-context-tokens sets the served limit\n";
  out << "per token:   K/V " << in.kv_bytes_per_token_bf16 << " bytes (bf16); per request: states "
      << in.state_bytes_per_request << " bytes (fp32)\n";
  const WeightsInspection& w = in.weights;
  if (w.present) {
    out << "weights:     " << w.tensors << " tensors, " << w.parameters << " parameters";
    for (const auto& [dtype, bytes] : w.bytes_by_dtype) out << ", " << dtype << " " << Bytes(bytes);
    out << "; missing " << w.missing.size() << ", unexpected " << w.unexpected.size() << ", wrong shape "
        << w.wrong_shape.size() << ", unusable dtype " << w.bad_dtype.size();
    if (w.unserved_layer_tensors > 0) out << "; " << w.unserved_layer_tensors << " in layers not served yet";
    out << "\n";
    for (const std::string& name : w.missing) out << "  missing:    " << name << "\n";
    for (const std::string& name : w.wrong_shape) out << "  wrong shape: " << name << "\n";
    for (const std::string& name : w.bad_dtype) out << "  dtype:      " << name << "\n";
    for (const std::string& name : w.unexpected) out << "  unexpected: " << name << "\n";
  } else {
    out << "weights:     absent (" << w.status << "); the config implies " << w.expected_parameters
        << " parameters in layers Tessera serves\n";
  }
  out << "tokenizer:   " << (tokenizer.path.empty() ? std::string("none") : tokenizer.path) << ": " << tokenizer.status
      << (tokenizer.vocab_size > 0 ? absl::StrCat(" (", tokenizer.vocab_size, " ids)") : std::string()) << "\n";
  if (!c.unread_keys.empty()) out << "not read:    " << absl::StrJoin(c.unread_keys, ", ") << " (config keys Tessera does not know)\n";
  if (reasons.empty()) {
    out << "verdict:     Tessera can serve this model" << (w.present ? "" : " (once its weights are there)") << "\n";
  } else {
    out << "verdict:     Tessera cannot serve this model:\n";
    for (const std::string& reason : reasons) out << "  - " << reason << "\n";
  }
}

}  // namespace

int RunInspectCommand(int argc, char** argv) {
  std::string model_dir;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (model_dir.empty() && argv[i][0] != '-') {
      model_dir = argv[i];
    } else {
      rest.push_back(argv[i]);
    }
  }
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(static_cast<int>(rest.size()), rest.data(), kInspectFlags);
  if (flags.ok() && flags->help()) {
    std::cout << FlagsUsage("inspect MODEL_DIR", kSummary, kInspectFlags);
    return 0;
  }
  if (!flags.ok()) {
    std::cerr << "tessera inspect: " << flags.status().message() << "\n";
    return 2;
  }
  if (model_dir.empty()) model_dir = flags->GetString("model", "");
  if (model_dir.empty()) {
    std::cerr << "tessera inspect: give a model directory\n\n" << FlagsUsage("inspect MODEL_DIR", kSummary, kInspectFlags);
    return 2;
  }
  absl::StatusOr<Inspection> in = InspectModel(model_dir);
  if (!in.ok()) {
    if (flags->Has("json")) {
      std::cout << Json{{"model_dir", model_dir}, {"servable", false}, {"reasons", {std::string(in.status().message())}}}
                       .dump(2)
                << "\n";
    } else {
      std::cerr << "tessera inspect: " << in.status().message() << "\n";
    }
    return 2;
  }
  const TokenizerCheck tokenizer =
      CheckTokenizer(flags->GetString("tokenizer", model_dir + "/tokenizer.json"), in->config);
  const std::vector<std::string> reasons = Reasons(*in, tokenizer);
  if (flags->Has("json")) {
    std::cout << ToJson(*in, tokenizer, reasons).dump(2) << "\n";
  } else {
    PrintText(*in, tokenizer, reasons, std::cout);
  }
  return reasons.empty() ? 0 : 2;
}

}  // namespace tessera
