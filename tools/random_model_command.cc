// Presets → config.json → parsed ModelConfig → tensor plan → chunked,
// multi-threaded generation streamed through SafetensorsWriter (one window of
// at most 16M elements is in memory at a time).
#include "tools/random_model_command.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/cli/cli_flags.h"
#include "tools/safetensors_writer.h"
#include "model/model_config.h"

namespace tessera {
namespace {

// MoE (`E` layers) shapes: Nemotron-3-Nano style, sigmoid routing with a
// correction bias, relu² experts and one shared expert.
struct MoePreset {
  int64_t experts = 0;  // 0: the preset has no MoE shapes (an E in --pattern is refused)
  int64_t top_k = 0;
  int64_t expert_intermediate = 0;
  int64_t shared_intermediate = 0;
  double routed_scaling = 1.0;
};

struct RandomModelPreset {
  absl::string_view name;
  int64_t hidden;
  int64_t mamba_heads, mamba_head_dim, state_size, groups, conv_kernel, chunk_size;
  int64_t attention_heads, kv_heads, head_dim;
  int64_t intermediate;
  int64_t max_positions;
  absl::string_view default_pattern;  // when --pattern is not given
  MoePreset moe;
  bool granite = false;  // granitemoehybrid: every layer's mixer (M or *) is followed by MoE + shared MLP
};

constexpr RandomModelPreset kPresets[] = {
    {"nemotron-h-8b-shaped", 4096, 128, 64, 128, 8, 4, 128, 32, 8, 128, 21504, 262144, "M-M*M-M*", {}},
    {"tiny", 64, 8, 16, 16, 2, 4, 16, 4, 2, 16, 128, 262144, "M-M*M-M*", {}},
    // NVIDIA-Nemotron-3-Nano-30B-A3B's layer shapes (the hub config); its 52
    // layers (MEMEM*E...) hold 23 E layers of 3.8 GB each in bf16, so the
    // default pattern keeps two of them.
    {"nemotron-3-nano-shaped", 2688, 64, 64, 128, 8, 4, 128, 32, 2, 128, 1856, 262144, "MEM*E", {128, 6, 1856, 3712, 2.5}},
    {"tiny-moe", 64, 8, 16, 16, 2, 4, 16, 4, 2, 16, 128, 262144, "ME*E", {8, 2, 32, 48, 2.5}},
    // ibm-granite/granite-4.0-h-tiny's shapes (hub config): 40 layers, attention at 5, 15, 25, 35;
    // 64 experts of 512, top 6, shared MLP 1024, the hub's multipliers, no positional encoding.
    {"granite-4.0-h-tiny-shaped", 1536, 48, 64, 128, 1, 4, 256, 12, 4, 128, 512, 131072,
     "MMMMM*MMMMMMMMM*MMMMMMMMM*MMMMMMMMM*MMMM", {64, 6, 512, 1024, 1.0}, /*granite=*/true},
    {"tiny-granite", 64, 8, 16, 16, 1, 4, 16, 4, 2, 16, 32, 131072, "M*M", {6, 2, 32, 48, 1.0}, /*granite=*/true},
};

enum class InitKind { kNormal, kOnes, kZeros, kALog, kDtBias };

struct TensorPlan {
  SafetensorsEntry entry;
  InitKind init = InitKind::kZeros;
  float stddev = 0;  // kNormal only
};

constexpr int64_t kChunkElements = int64_t{1} << 16;  // one PRNG stream each
constexpr int64_t kWindowChunks = 256;                // 16M elements per write

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    for (uint64_t& x : s_) x = SplitMix64(seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

uint64_t ChunkSeed(uint64_t seed, uint64_t tensor, uint64_t chunk) {
  uint64_t s = seed;
  uint64_t h = SplitMix64(s);
  s = h ^ (tensor * 0xd1b54a32d192ed03ull);
  h = SplitMix64(s);
  s = h ^ (chunk * 0x8cb92ba72f3d8dd7ull);
  return SplitMix64(s);
}

// n values of `plan`'s distribution for chunk `chunk` of tensor `tensor`.
void FillChunk(const TensorPlan& plan, uint64_t seed, uint64_t tensor, int64_t chunk, float* out, int64_t n) {
  constexpr float kTwoPi = 6.28318530717958647692f;
  Xoshiro256 rng(ChunkSeed(seed, tensor, static_cast<uint64_t>(chunk)));
  switch (plan.init) {
    case InitKind::kOnes:
      std::fill(out, out + n, 1.0f);
      return;
    case InitKind::kZeros:
      std::fill(out, out + n, 0.0f);
      return;
    case InitKind::kNormal:
      // Box-Muller, both outputs used; one 64-bit draw gives two 24-bit uniforms.
      for (int64_t i = 0; i < n; i += 2) {
        const uint64_t x = rng.Next();
        const float u1 = static_cast<float>((x >> 40) + 1) * 0x1p-24f;          // (0, 1]
        const float u2 = static_cast<float>((x >> 8) & 0xffffffu) * 0x1p-24f;  // [0, 1)
        const float r = plan.stddev * std::sqrt(-2.0f * std::log(u1));
        out[i] = r * std::cos(kTwoPi * u2);
        if (i + 1 < n) out[i + 1] = r * std::sin(kTwoPi * u2);
      }
      return;
    case InitKind::kALog:
      for (int64_t i = 0; i < n; ++i) {
        const double u = static_cast<double>(rng.Next() >> 11) * 0x1p-53;
        out[i] = static_cast<float>(std::log(1.0 + 15.0 * u));  // A = -exp(A_log) in [-16, -1]
      }
      return;
    case InitKind::kDtBias:
      for (int64_t i = 0; i < n; ++i) {
        const double u = static_cast<double>(rng.Next() >> 11) * 0x1p-53;
        const double dt = std::exp(std::log(1e-3) + u * (std::log(1e-1) - std::log(1e-3)));
        out[i] = static_cast<float>(dt + std::log(-std::expm1(-dt)));  // softplus(out) = dt
      }
      return;
  }
}

uint16_t FloatToBFloat16(float f) {  // round to nearest even; inputs are finite
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

absl::StatusOr<const RandomModelPreset*> FindPreset(absl::string_view name) {
  std::vector<absl::string_view> names;
  for (const RandomModelPreset& p : kPresets) {
    if (p.name == name) return &p;
    names.push_back(p.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--preset '", name, "' is not known (", absl::StrJoin(names, ", "), ")"));
}

// granitemoehybrid's config.json, as the hub's Granite-4.0-H files spell it.
nlohmann::ordered_json GraniteConfigJson(const RandomModelPreset& p, const RandomModelOptions& o) {
  nlohmann::ordered_json j;
  j["architectures"] = {"GraniteMoeHybridForCausalLM"};
  j["model_type"] = "granitemoehybrid";
  j["torch_dtype"] = o.dtype == DType::kBF16 ? "bfloat16" : "float32";
  j["vocab_size"] = o.vocab;
  j["hidden_size"] = p.hidden;
  j["num_hidden_layers"] = static_cast<int64_t>(o.pattern.size());
  nlohmann::ordered_json types = nlohmann::ordered_json::array();
  for (char ch : o.pattern) types.push_back(ch == '*' ? "attention" : "mamba");
  j["layer_types"] = types;
  j["mamba_n_heads"] = p.mamba_heads;
  j["mamba_d_head"] = p.mamba_head_dim;
  j["mamba_d_state"] = p.state_size;
  j["mamba_n_groups"] = p.groups;
  j["mamba_d_conv"] = p.conv_kernel;
  j["mamba_chunk_size"] = p.chunk_size;
  j["mamba_expand"] = p.mamba_heads * p.mamba_head_dim / p.hidden;
  j["num_attention_heads"] = p.attention_heads;
  j["num_key_value_heads"] = p.kv_heads;
  j["position_embedding_type"] = "nope";
  j["num_local_experts"] = p.moe.experts;
  j["num_experts_per_tok"] = p.moe.top_k;
  j["intermediate_size"] = p.moe.expert_intermediate;
  j["shared_intermediate_size"] = p.moe.shared_intermediate;
  j["embedding_multiplier"] = 12.0;
  j["residual_multiplier"] = 0.22;
  j["attention_multiplier"] = 0.0078125;
  j["logits_scaling"] = 6.0;
  j["rms_norm_eps"] = 1e-5;
  j["max_position_embeddings"] = p.max_positions;
  j["tie_word_embeddings"] = true;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  j["tessera_random_model"] = {{"preset", std::string(p.name)}, {"seed", o.seed}};
  return j;
}

nlohmann::ordered_json ConfigJson(const RandomModelPreset& p, const RandomModelOptions& o) {
  if (p.granite) return GraniteConfigJson(p, o);
  const int64_t d_inner = p.mamba_heads * p.mamba_head_dim;
  nlohmann::ordered_json j;
  j["architectures"] = {"NemotronHForCausalLM"};
  j["model_type"] = "nemotron_h";
  j["torch_dtype"] = o.dtype == DType::kBF16 ? "bfloat16" : "float32";
  j["vocab_size"] = o.vocab;
  j["hidden_size"] = p.hidden;
  j["num_hidden_layers"] = static_cast<int64_t>(o.pattern.size());
  j["hybrid_override_pattern"] = o.pattern;
  j["mamba_num_heads"] = p.mamba_heads;
  j["mamba_head_dim"] = p.mamba_head_dim;
  j["ssm_state_size"] = p.state_size;
  j["n_groups"] = p.groups;
  j["conv_kernel"] = p.conv_kernel;
  j["chunk_size"] = p.chunk_size;
  if (d_inner % p.hidden == 0) j["expand"] = d_inner / p.hidden;
  j["use_conv_bias"] = true;
  j["mamba_proj_bias"] = false;
  j["use_bias"] = false;
  j["mamba_hidden_act"] = "silu";
  j["time_step_min"] = 1e-3;
  j["time_step_max"] = 1e-1;
  j["time_step_floor"] = 1e-4;
  j["num_attention_heads"] = p.attention_heads;
  j["num_key_value_heads"] = p.kv_heads;
  j["head_dim"] = p.head_dim;
  j["attention_bias"] = false;
  j["intermediate_size"] = p.intermediate;
  j["mlp_hidden_act"] = "relu2";
  j["mlp_bias"] = false;
  j["layer_norm_epsilon"] = 1e-5;
  j["max_position_embeddings"] = p.max_positions;
  j["tie_word_embeddings"] = false;
  j["residual_in_fp32"] = false;
  if (p.moe.experts > 0) {
    j["n_routed_experts"] = p.moe.experts;
    j["num_experts_per_tok"] = p.moe.top_k;
    j["moe_intermediate_size"] = p.moe.expert_intermediate;
    j["moe_shared_expert_intermediate_size"] = p.moe.shared_intermediate;
    j["n_shared_experts"] = 1;
    j["routed_scaling_factor"] = p.moe.routed_scaling;
    j["n_group"] = 1;
    j["topk_group"] = 1;
    j["norm_topk_prob"] = true;
  }
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  j["pad_token_id"] = 0;
  j["tessera_random_model"] = {{"preset", std::string(p.name)}, {"seed", o.seed}};
  return j;
}

// Every tensor LoadModelWeights reads for `c`, with its initialiser.
std::vector<TensorPlan> PlanTensors(const ModelConfig& c, DType dtype) {
  std::vector<TensorPlan> plan;
  const double layers = static_cast<double>(c.num_layers);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, InitKind init, double stddev = 0) {
    plan.push_back({{name, dtype, std::move(shape)}, init, static_cast<float>(stddev)});
  };
  auto input_std = [](int64_t fan_in) { return 1.0 / std::sqrt(static_cast<double>(fan_in)); };
  auto output_std = [&](int64_t fan_in) { return 0.5 / std::sqrt(static_cast<double>(fan_in) * layers); };
  const int64_t hidden = c.hidden_size;

  add(c.embedding_weight, {c.vocab_size, hidden}, InitKind::kNormal, 1.0);  // (vocab, hidden)
  for (const BlockSpec& b : c.blocks) {
    add(b.norm_weight, {hidden}, InitKind::kOnes);
    const std::string& p = b.prefix;
    switch (b.kind) {
      case BlockKind::kMamba: {
        const MambaConfig& m = c.mamba;
        add(p + "in_proj.weight", {m.in_proj_width(), hidden}, InitKind::kNormal, input_std(hidden));
        if (m.proj_bias) add(p + "in_proj.bias", {m.in_proj_width()}, InitKind::kZeros);
        add(p + "conv1d.weight", {m.conv_channels(), 1, m.conv_kernel}, InitKind::kNormal, input_std(m.conv_kernel));
        if (m.conv_bias) add(p + "conv1d.bias", {m.conv_channels()}, InitKind::kZeros);
        add(p + "dt_bias", {m.num_heads}, InitKind::kDtBias);
        add(p + "A_log", {m.num_heads}, InitKind::kALog);
        add(p + "D", {m.num_heads}, InitKind::kOnes);
        add(p + "norm.weight", {m.d_inner()}, InitKind::kOnes);
        add(p + "out_proj.weight", {hidden, m.d_inner()}, InitKind::kNormal, output_std(m.d_inner()));
        if (m.proj_bias) add(p + "out_proj.bias", {hidden}, InitKind::kZeros);
        break;
      }
      case BlockKind::kAttention: {
        const AttentionConfig& a = c.attention;
        const int64_t q_width = a.num_heads * a.head_dim;
        const int64_t kv_width = a.num_kv_heads * a.head_dim;
        add(p + "q_proj.weight", {q_width, hidden}, InitKind::kNormal, input_std(hidden));
        add(p + "k_proj.weight", {kv_width, hidden}, InitKind::kNormal, input_std(hidden));
        add(p + "v_proj.weight", {kv_width, hidden}, InitKind::kNormal, input_std(hidden));
        add(p + "o_proj.weight", {hidden, q_width}, InitKind::kNormal, output_std(q_width));
        if (a.bias) {
          add(p + "q_proj.bias", {q_width}, InitKind::kZeros);
          add(p + "k_proj.bias", {kv_width}, InitKind::kZeros);
          add(p + "v_proj.bias", {kv_width}, InitKind::kZeros);
          add(p + "o_proj.bias", {hidden}, InitKind::kZeros);
        }
        break;
      }
      case BlockKind::kMoe: {
        const MoeConfig& m = c.moe;
        const int64_t inner = m.expert_intermediate_size;
        const int64_t shared = m.shared_intermediate_size * m.shared_experts;
        if (c.family == ModelFamily::kGraniteMoeHybrid) {  // stacked experts, gate and up fused
          add(p + "block_sparse_moe.router.layer.weight", {m.experts, hidden}, InitKind::kNormal, input_std(hidden));
          add(p + "block_sparse_moe.input_linear.weight", {m.experts, 2 * inner, hidden}, InitKind::kNormal,
              input_std(hidden));
          add(p + "block_sparse_moe.output_linear.weight", {m.experts, hidden, inner}, InitKind::kNormal,
              output_std(inner));
          add(p + "shared_mlp.input_linear.weight", {2 * shared, hidden}, InitKind::kNormal, input_std(hidden));
          add(p + "shared_mlp.output_linear.weight", {hidden, shared}, InitKind::kNormal, output_std(shared));
          break;
        }
        add(p + "gate.weight", {m.experts, hidden}, InitKind::kNormal, input_std(hidden));
        add(p + "gate.e_score_correction_bias", {m.experts}, InitKind::kZeros);
        for (int64_t e = 0; e < m.experts; ++e) {
          const std::string expert = absl::StrCat(p, "experts.", e, ".");
          add(expert + "up_proj.weight", {inner, hidden}, InitKind::kNormal, input_std(hidden));
          add(expert + "down_proj.weight", {hidden, inner}, InitKind::kNormal, output_std(inner));
        }
        if (shared > 0) {
          add(p + "shared_experts.up_proj.weight", {shared, hidden}, InitKind::kNormal, input_std(hidden));
          add(p + "shared_experts.down_proj.weight", {hidden, shared}, InitKind::kNormal, output_std(shared));
        }
        break;
      }
      case BlockKind::kMlp: {
        const MlpConfig& m = c.mlp;
        const bool gated = m.activation == MlpActivation::kSwiGlu;
        if (gated) add(p + "gate_proj.weight", {m.intermediate_size, hidden}, InitKind::kNormal, input_std(hidden));
        add(p + "up_proj.weight", {m.intermediate_size, hidden}, InitKind::kNormal, input_std(hidden));
        add(p + "down_proj.weight", {hidden, m.intermediate_size}, InitKind::kNormal, output_std(m.intermediate_size));
        if (m.bias) {
          if (gated) add(p + "gate_proj.bias", {m.intermediate_size}, InitKind::kZeros);
          add(p + "up_proj.bias", {m.intermediate_size}, InitKind::kZeros);
          add(p + "down_proj.bias", {hidden}, InitKind::kZeros);
        }
        break;
      }
    }
  }
  add(c.final_norm_weight, {hidden}, InitKind::kOnes);
  if (!c.tie_word_embeddings) add(c.lm_head_weight, {c.vocab_size, hidden}, InitKind::kNormal, input_std(hidden));
  return plan;
}

// Generates tensor `index` window by window and appends it to `writer`.
absl::Status WriteTensor(const TensorPlan& plan, uint64_t index, uint64_t seed, int threads,
                         SafetensorsWriter& writer, const std::function<void()>& on_window) {
  const int64_t numel = plan.entry.numel();
  const int64_t element_bytes = DTypeSize(plan.entry.dtype);
  const int64_t chunks = (numel + kChunkElements - 1) / kChunkElements;
  std::vector<uint8_t> window;  // (window elements) in the stored dtype
  for (int64_t w0 = 0; w0 < chunks; w0 += kWindowChunks) {
    const int64_t w1 = std::min(chunks, w0 + kWindowChunks);
    const int64_t first = w0 * kChunkElements;
    const int64_t count = std::min(numel, w1 * kChunkElements) - first;
    window.resize(static_cast<size_t>(count * element_bytes));
    auto work = [&](int64_t t, int64_t stride) {
      std::vector<float> scratch(kChunkElements);  // (chunk,) fp32 before conversion
      for (int64_t chunk = w0 + t; chunk < w1; chunk += stride) {
        const int64_t begin = chunk * kChunkElements;
        const int64_t n = std::min(numel, begin + kChunkElements) - begin;
        FillChunk(plan, seed, index, chunk, scratch.data(), n);
        uint8_t* dst = window.data() + (begin - first) * element_bytes;
        if (plan.entry.dtype == DType::kBF16) {
          for (int64_t i = 0; i < n; ++i) {
            const uint16_t b = FloatToBFloat16(scratch[i]);
            std::memcpy(dst + 2 * i, &b, 2);
          }
        } else {
          std::memcpy(dst, scratch.data(), static_cast<size_t>(n) * sizeof(float));
        }
      }
    };
    const int64_t workers = std::min<int64_t>(threads, w1 - w0);
    if (workers <= 1) {
      work(0, 1);
    } else {
      std::vector<std::thread> pool;
      for (int64_t t = 0; t < workers; ++t) pool.emplace_back(work, t, workers);
      for (std::thread& th : pool) th.join();
    }
    RETURN_IF_ERROR(writer.Append(window));
    on_window();
  }
  return absl::OkStatus();
}

std::string MiB(int64_t bytes) { return absl::StrFormat("%.0f MiB", static_cast<double>(bytes) / (1 << 20)); }

}  // namespace

absl::Status WriteRandomModel(const RandomModelOptions& options, std::ostream* progress) {
  if (options.out_dir.empty()) return absl::InvalidArgumentError("--out is required");
  ASSIGN_OR_RETURN(const RandomModelPreset* preset, FindPreset(options.preset));
  if (options.vocab <= 0 || options.vocab > (int64_t{1} << 31) - 1) {
    return absl::InvalidArgumentError(absl::StrCat("--vocab must be in [1, 2^31). Given: ", options.vocab));
  }
  RandomModelOptions resolved = options;
  if (resolved.pattern.empty()) resolved.pattern = std::string(preset->default_pattern);
  if (preset->granite && resolved.pattern.find_first_not_of("M*") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--pattern for ", preset->name, " takes M and * only (every "
                                                   "granitemoehybrid layer ends in its MoE block). Given: ",
                                                   resolved.pattern));
  }
  if (resolved.pattern.find('E') != std::string::npos && preset->moe.experts == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--pattern has E (MoE) layers but preset ", preset->name,
                                                   " has no expert shapes (nemotron-3-nano-shaped, tiny-moe do)"));
  }
  if (options.dtype != DType::kBF16 && options.dtype != DType::kF32) {
    return absl::InvalidArgumentError("--dtype must be bf16 or f32");
  }
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

  const std::string config_path = options.out_dir + "/config.json";
  const std::string config_text = ConfigJson(*preset, resolved).dump(2) + "\n";
  ASSIGN_OR_RETURN(ModelConfig config, ParseModelConfig(config_text, config_path));
  const std::vector<TensorPlan> plan = PlanTensors(config, options.dtype);

  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", options.out_dir, ": ", ec.message()));
  {
    std::ofstream out(config_path, std::ios::binary | std::ios::trunc);
    out << config_text;
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", config_path));
  }

  std::vector<SafetensorsEntry> entries;
  for (const TensorPlan& t : plan) entries.push_back(t.entry);
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsWriter> writer,
                   SafetensorsWriter::Create(options.out_dir + "/model.safetensors", std::move(entries),
                                             {{"format", "pt"}}));
  const int64_t total = writer->data_bytes_total();
  const bool big = total >= (int64_t{256} << 20);
  const int threads = options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  if (progress != nullptr && big) {
    *progress << "make-random-model: " << plan.size() << " tensors, " << MiB(total) << " to "
              << options.out_dir << "/model.safetensors (" << threads << " threads)" << std::endl;
  }
  int reported_tenth = 0;
  auto on_window = [&] {
    const int tenth = static_cast<int>(10 * writer->data_bytes_written() / std::max<int64_t>(total, 1));
    if (progress == nullptr || !big || tenth <= reported_tenth) return;
    reported_tenth = tenth;
    *progress << absl::StrFormat("make-random-model: %3d%% (%s of %s), %.1f s", 10 * tenth,
                                 MiB(writer->data_bytes_written()), MiB(total), seconds())
              << std::endl;
  };
  for (size_t i = 0; i < plan.size(); ++i) {
    RETURN_IF_ERROR(WriteTensor(plan[i], i, options.seed, threads, *writer, on_window));
  }
  RETURN_IF_ERROR(writer->Finish());

  if (progress != nullptr) {
    int64_t params = 0;
    for (const TensorPlan& t : plan) params += t.entry.numel();
    *progress << absl::StrFormat(
                     "wrote %s: %s preset %s, pattern %s (%d layers), vocab %d, %d tensors, %.1fM params, "
                     "%s %s, seed %d, %.1f s",
                     options.out_dir, config.model_type, preset->name, resolved.pattern, config.num_layers, config.vocab_size,
                     plan.size(), static_cast<double>(params) / 1e6, MiB(total),
                     options.dtype == DType::kBF16 ? "bf16" : "f32", options.seed, seconds())
              << std::endl;
  }
  return absl::OkStatus();
}

namespace {

constexpr FlagSpec kMakeRandomModelFlags[] = {
    {"out", true, "directory to write config.json and model.safetensors into (created)"},
    {"preset", true, "nemotron-h-8b-shaped (default: hidden 4096, 8B layer shapes), tiny (hidden 64), "
                     "nemotron-3-nano-shaped (hidden 2688, 128 experts, top 6), tiny-moe, granite-4.0-h-tiny-shaped "
                     "(hidden 1536, 64 experts, top 6, shared MLP, multipliers) or tiny-granite"},
    {"pattern", true, "hybrid_override_pattern: M mamba, * attention, - MLP, E MoE (default: the preset's, "
                      "M-M*M-M* or MEM*E / ME*E for the MoE presets)"},
    {"vocab", true, "vocabulary size (default 1024: a 64K-token prompt's logits stay under the gRPC limit)"},
    {"seed", true, "PRNG seed (default 0); the same seed gives the same bytes"},
    {"dtype", true, "bf16 (default) or f32"},
    {"threads", true, "generator threads (default: every hardware thread)"},
};

absl::StatusOr<RandomModelOptions> OptionsFromFlags(const CliFlags& flags) {
  RandomModelOptions o;
  ASSIGN_OR_RETURN(o.out_dir, flags.RequireString("out"));
  o.preset = flags.GetString("preset", o.preset);
  o.pattern = flags.GetString("pattern", o.pattern);
  ASSIGN_OR_RETURN(o.vocab, flags.GetInt("vocab", o.vocab));
  ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed", 0));
  if (seed < 0) return absl::InvalidArgumentError(absl::StrCat("--seed must be >= 0. Given: ", seed));
  o.seed = static_cast<uint64_t>(seed);
  const std::string dtype = flags.GetString("dtype", "bf16");
  if (dtype == "bf16") {
    o.dtype = DType::kBF16;
  } else if (dtype == "f32" || dtype == "fp32") {
    o.dtype = DType::kF32;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--dtype must be bf16 or f32. Given: '", dtype, "'"));
  }
  ASSIGN_OR_RETURN(int64_t threads, flags.GetInt("threads", 0));
  if (threads < 0 || threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("--threads must be in [0, 1024]. Given: ", threads));
  }
  o.threads = static_cast<int>(threads);
  return o;
}

}  // namespace

int RunMakeRandomModelCommand(int argc, char** argv) {
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kMakeRandomModelFlags);
  if (flags.ok() && flags->help()) {
    std::cout << FlagsUsage("make-random-model", "Writes a nemotron_h checkpoint with seeded random weights.",
                            kMakeRandomModelFlags);
    return 0;
  }
  absl::StatusOr<RandomModelOptions> options = flags.ok() ? OptionsFromFlags(*flags)
                                                          : absl::StatusOr<RandomModelOptions>(flags.status());
  const absl::Status status = options.ok() ? WriteRandomModel(*options, &std::cout) : options.status();
  if (!status.ok()) {
    std::cerr << "tessera make-random-model: " << status.message() << "\n";
    return 2;
  }
  return 0;
}

}  // namespace tessera
