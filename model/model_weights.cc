// Binds checkpoint tensors to ModelConfig blocks, checking each shape.
#include "model/model_weights.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tessera {
namespace {

using Shape = std::vector<int64_t>;

// Where the loaders get tensors from: a checkpoint, or a recorder that only
// notes which tensors (names, shapes) the layout asks for (ExpectedTensors).
// Vectors (norms, biases, conv taps, A, D) always load as fp32; matrices load
// as fp32 or, for a GPU backend, as stored (WeightStorage).
class TensorLoader {
 public:
  virtual ~TensorLoader() = default;
  virtual absl::StatusOr<HostTensor> LoadFloat32(const std::string& name, const Shape& shape) const = 0;
  virtual absl::StatusOr<HostTensor> LoadMatrix(const std::string& name, const Shape& shape) const = 0;
};

class CheckpointLoader final : public TensorLoader {
 public:
  CheckpointLoader(const Checkpoint& ckpt, WeightStorage storage) : ckpt_(ckpt), storage_(storage) {}
  absl::StatusOr<HostTensor> LoadFloat32(const std::string& name, const Shape& shape) const override {
    return ckpt_.LoadFloat32(name, shape);
  }
  absl::StatusOr<HostTensor> LoadMatrix(const std::string& name, const Shape& shape) const override {
    if (storage_ == WeightStorage::kMatricesAsStored) return ckpt_.LoadAsStored(name, shape);
    return ckpt_.LoadFloat32(name, shape);
  }

 private:
  const Checkpoint& ckpt_;
  WeightStorage storage_;
};

class RecordingLoader final : public TensorLoader {
 public:
  absl::StatusOr<HostTensor> LoadFloat32(const std::string& name, const Shape& shape) const override {
    return Record(name, shape, /*matrix=*/false);
  }
  absl::StatusOr<HostTensor> LoadMatrix(const std::string& name, const Shape& shape) const override {
    return Record(name, shape, /*matrix=*/true);
  }
  std::vector<TensorSpec> TakeSpecs() { return std::move(specs_); }

 private:
  absl::StatusOr<HostTensor> Record(const std::string& name, const Shape& shape, bool matrix) const {
    for (const TensorSpec& spec : specs_) {
      if (spec.name == name) return HostTensor{};  // tied: one tensor, two uses
    }
    specs_.push_back({name, shape, matrix});
    return HostTensor{};
  }
  mutable std::vector<TensorSpec> specs_;
};

absl::StatusOr<HostTensor> LoadOptional(const TensorLoader& ckpt, const std::string& name, bool wanted,
                                        const Shape& shape) {
  if (!wanted) return HostTensor{};
  return ckpt.LoadFloat32(name, shape);
}

absl::StatusOr<MambaWeights> LoadMamba(const TensorLoader& ckpt, const ModelConfig& c, const std::string& p) {
  const MambaConfig& m = c.mamba;
  const int64_t width = m.in_proj_width();
  MambaWeights w;
  ASSIGN_OR_RETURN(w.in_proj, ckpt.LoadMatrix(p + "in_proj.weight", Shape{width, c.hidden_size}));
  ASSIGN_OR_RETURN(w.in_proj_bias, LoadOptional(ckpt, p + "in_proj.bias", m.proj_bias, Shape{width}));
  ASSIGN_OR_RETURN(w.conv_weight,
                   ckpt.LoadFloat32(p + "conv1d.weight", Shape{m.conv_channels(), 1, m.conv_kernel}));
  ASSIGN_OR_RETURN(w.conv_bias, LoadOptional(ckpt, p + "conv1d.bias", m.conv_bias, Shape{m.conv_channels()}));
  ASSIGN_OR_RETURN(w.dt_bias, ckpt.LoadFloat32(p + "dt_bias", Shape{m.num_heads}));
  ASSIGN_OR_RETURN(HostTensor a_log, ckpt.LoadFloat32(p + "A_log", Shape{m.num_heads}));
  if (a_log.data != nullptr) {  // null when only recording the layout
    w.A.resize(m.num_heads);
    for (int64_t h = 0; h < m.num_heads; ++h) w.A[h] = -std::exp(a_log.data[h]);
  }
  ASSIGN_OR_RETURN(w.D, ckpt.LoadFloat32(p + "D", Shape{m.num_heads}));
  ASSIGN_OR_RETURN(w.norm, ckpt.LoadFloat32(p + "norm.weight", Shape{m.d_inner()}));
  ASSIGN_OR_RETURN(w.out_proj, ckpt.LoadMatrix(p + "out_proj.weight", Shape{c.hidden_size, m.d_inner()}));
  ASSIGN_OR_RETURN(w.out_proj_bias, LoadOptional(ckpt, p + "out_proj.bias", m.proj_bias, Shape{c.hidden_size}));
  return w;
}

absl::StatusOr<AttentionWeights> LoadAttention(const TensorLoader& ckpt, const ModelConfig& c,
                                               const std::string& p) {
  const AttentionConfig& a = c.attention;
  const int64_t q_width = a.num_heads * a.head_dim;
  const int64_t kv_width = a.num_kv_heads * a.head_dim;
  AttentionWeights w;
  ASSIGN_OR_RETURN(w.q_proj, ckpt.LoadMatrix(p + "q_proj.weight", Shape{q_width, c.hidden_size}));
  ASSIGN_OR_RETURN(w.k_proj, ckpt.LoadMatrix(p + "k_proj.weight", Shape{kv_width, c.hidden_size}));
  ASSIGN_OR_RETURN(w.v_proj, ckpt.LoadMatrix(p + "v_proj.weight", Shape{kv_width, c.hidden_size}));
  ASSIGN_OR_RETURN(w.o_proj, ckpt.LoadMatrix(p + "o_proj.weight", Shape{c.hidden_size, q_width}));
  ASSIGN_OR_RETURN(w.q_bias, LoadOptional(ckpt, p + "q_proj.bias", a.bias, Shape{q_width}));
  ASSIGN_OR_RETURN(w.k_bias, LoadOptional(ckpt, p + "k_proj.bias", a.bias, Shape{kv_width}));
  ASSIGN_OR_RETURN(w.v_bias, LoadOptional(ckpt, p + "v_proj.bias", a.bias, Shape{kv_width}));
  ASSIGN_OR_RETURN(w.o_bias, LoadOptional(ckpt, p + "o_proj.bias", a.bias, Shape{c.hidden_size}));
  return w;
}

absl::StatusOr<MlpWeights> LoadMlp(const TensorLoader& ckpt, const ModelConfig& c, const std::string& p) {
  const MlpConfig& m = c.mlp;
  const bool gated = m.activation == MlpActivation::kSwiGlu;
  MlpWeights w;
  if (gated) {
    ASSIGN_OR_RETURN(w.gate_proj, ckpt.LoadMatrix(p + "gate_proj.weight", Shape{m.intermediate_size, c.hidden_size}));
  }
  ASSIGN_OR_RETURN(w.up_proj, ckpt.LoadMatrix(p + "up_proj.weight", Shape{m.intermediate_size, c.hidden_size}));
  ASSIGN_OR_RETURN(w.down_proj,
                   ckpt.LoadMatrix(p + "down_proj.weight", Shape{c.hidden_size, m.intermediate_size}));
  ASSIGN_OR_RETURN(w.gate_bias, LoadOptional(ckpt, p + "gate_proj.bias", gated && m.bias, Shape{m.intermediate_size}));
  ASSIGN_OR_RETURN(w.up_bias, LoadOptional(ckpt, p + "up_proj.bias", m.bias, Shape{m.intermediate_size}));
  ASSIGN_OR_RETURN(w.down_bias, LoadOptional(ckpt, p + "down_proj.bias", m.bias, Shape{c.hidden_size}));
  return w;
}

// One (parts, rows, cols) fp32 tensor from `names.size()` tensors of (rows, cols).
absl::StatusOr<HostTensor> LoadStacked(const TensorLoader& ckpt, const std::vector<std::string>& names,
                                       const Shape& part) {
  HostTensor stacked;
  stacked.shape = {static_cast<int64_t>(names.size()), part[0], part[1]};
  const int64_t part_numel = part[0] * part[1];
  for (size_t e = 0; e < names.size(); ++e) {
    ASSIGN_OR_RETURN(HostTensor one, ckpt.LoadFloat32(names[e], part));
    if (one.data == nullptr) continue;  // only recording the layout
    if (stacked.owned.empty()) stacked.owned.resize(names.size() * part_numel);
    std::copy(one.data, one.data + part_numel, stacked.owned.begin() + e * part_numel);
  }
  if (!stacked.owned.empty()) stacked.data = stacked.owned.data();
  return stacked;
}

// nemotron_h (prefix "backbone.layers.N.mixer."): gate.weight, gate.e_score_correction_bias,
// experts.J.{up,down}_proj.weight, shared_experts.{up,down}_proj.weight.
// granitemoehybrid (prefix "model.layers.N."): block_sparse_moe.router.layer.weight,
// block_sparse_moe.{input,output}_linear.weight (stacked, gate|up fused), shared_mlp.{input,output}_linear.weight.
absl::StatusOr<MoeWeights> LoadMoe(const TensorLoader& ckpt, const ModelConfig& c, const std::string& p) {
  const MoeConfig& m = c.moe;
  const int64_t E = m.experts;
  const int64_t I = m.expert_intermediate_size;
  const int64_t shared = m.shared_intermediate_size * m.shared_experts;
  const bool fused = m.activation == MlpActivation::kSwiGlu;  // gate and up in one projection
  MoeWeights w;
  if (c.family == ModelFamily::kNemotronH) {
    ASSIGN_OR_RETURN(w.router, ckpt.LoadFloat32(p + "gate.weight", Shape{E, c.hidden_size}));
    ASSIGN_OR_RETURN(w.correction_bias, ckpt.LoadFloat32(p + "gate.e_score_correction_bias", Shape{E}));
    std::vector<std::string> up_names, down_names;
    for (int64_t e = 0; e < E; ++e) {
      up_names.push_back(absl::StrCat(p, "experts.", e, ".up_proj.weight"));
      down_names.push_back(absl::StrCat(p, "experts.", e, ".down_proj.weight"));
    }
    ASSIGN_OR_RETURN(w.experts_up, LoadStacked(ckpt, up_names, Shape{I, c.hidden_size}));
    ASSIGN_OR_RETURN(w.experts_down, LoadStacked(ckpt, down_names, Shape{c.hidden_size, I}));
    if (shared > 0) {
      ASSIGN_OR_RETURN(w.shared_up, ckpt.LoadMatrix(p + "shared_experts.up_proj.weight", Shape{shared, c.hidden_size}));
      ASSIGN_OR_RETURN(w.shared_down,
                       ckpt.LoadMatrix(p + "shared_experts.down_proj.weight", Shape{c.hidden_size, shared}));
    }
    return w;
  }
  if (E > 0) {
    const int64_t up_rows = fused ? 2 * I : I;
    ASSIGN_OR_RETURN(w.router, ckpt.LoadFloat32(p + "block_sparse_moe.router.layer.weight", Shape{E, c.hidden_size}));
    ASSIGN_OR_RETURN(w.experts_up,
                     ckpt.LoadFloat32(p + "block_sparse_moe.input_linear.weight", Shape{E, up_rows, c.hidden_size}));
    ASSIGN_OR_RETURN(w.experts_down,
                     ckpt.LoadFloat32(p + "block_sparse_moe.output_linear.weight", Shape{E, c.hidden_size, I}));
  }
  const int64_t shared_rows = fused ? 2 * shared : shared;
  ASSIGN_OR_RETURN(w.shared_up, ckpt.LoadMatrix(p + "shared_mlp.input_linear.weight", Shape{shared_rows, c.hidden_size}));
  ASSIGN_OR_RETURN(w.shared_down, ckpt.LoadMatrix(p + "shared_mlp.output_linear.weight", Shape{c.hidden_size, shared}));
  return w;
}

absl::StatusOr<BlockWeights> LoadBlock(const TensorLoader& ckpt, const ModelConfig& c, const BlockSpec& spec) {
  BlockWeights b;
  b.spec = spec;
  ASSIGN_OR_RETURN(b.norm, ckpt.LoadFloat32(spec.norm_weight, Shape{c.hidden_size}));
  switch (spec.kind) {
    case BlockKind::kMamba: {
      ASSIGN_OR_RETURN(b.op, LoadMamba(ckpt, c, spec.prefix));
      break;
    }
    case BlockKind::kAttention: {
      ASSIGN_OR_RETURN(b.op, LoadAttention(ckpt, c, spec.prefix));
      break;
    }
    case BlockKind::kMlp: {
      ASSIGN_OR_RETURN(b.op, LoadMlp(ckpt, c, spec.prefix));
      break;
    }
    case BlockKind::kMoe: {
      ASSIGN_OR_RETURN(b.op, LoadMoe(ckpt, c, spec.prefix));
      break;
    }
  }
  return b;
}

// Every tensor of the model through `ckpt`, into `w` (config set).
absl::Status LoadAll(const TensorLoader& ckpt, ModelWeights& w) {
  const ModelConfig& c = w.config;
  ASSIGN_OR_RETURN(w.embedding, ckpt.LoadMatrix(c.embedding_weight, Shape{c.vocab_size, c.hidden_size}));
  ASSIGN_OR_RETURN(w.final_norm, ckpt.LoadFloat32(c.final_norm_weight, Shape{c.hidden_size}));
  // Tied embeddings: lm_head_weight names the embedding table itself.
  ASSIGN_OR_RETURN(w.lm_head, ckpt.LoadMatrix(c.lm_head_weight, Shape{c.vocab_size, c.hidden_size}));

  int64_t slots[4] = {0, 0, 0, 0};
  for (const BlockSpec& spec : c.blocks) {
    ASSIGN_OR_RETURN(BlockWeights block, LoadBlock(ckpt, c, spec));
    block.state_slot = slots[static_cast<int>(spec.kind)]++;
    w.blocks.push_back(std::move(block));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelWeights>> LoadModelWeights(const std::string& model_dir, WeightStorage storage) {
  auto w = std::make_unique<ModelWeights>();
  w->model_dir = model_dir;
  ASSIGN_OR_RETURN(w->config, LoadModelConfig(model_dir));
  RETURN_IF_ERROR(CheckServed(w->config));
  ASSIGN_OR_RETURN(w->checkpoint, Checkpoint::Open(model_dir));
  w->storage = storage;
  RETURN_IF_ERROR(LoadAll(CheckpointLoader(*w->checkpoint, storage), *w));
  return w;
}

std::vector<TensorSpec> ExpectedTensors(const ModelConfig& config) {
  ModelWeights w;
  w.config = config;
  w.config.blocks.clear();
  for (const BlockSpec& spec : config.blocks) {  // layers not served are not checked
    if (spec.kind != BlockKind::kMoe || MoeLayersServed(config)) w.config.blocks.push_back(spec);
  }
  RecordingLoader recorder;
  LoadAll(recorder, w).IgnoreError();  // a recorder never fails
  return recorder.TakeSpecs();
}

bool MoeLayersServed(const ModelConfig& config) { return config.moe.latent_size == 0; }

}  // namespace tessera
