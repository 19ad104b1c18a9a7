// A model's weights bound to its config: every tensor the config implies is
// looked up by name and checked against the shape the config implies, so a
// checkpoint that disagrees with its config fails at load, naming the tensor.
// fp32 on the host (zero-copy from the mapping when stored as aligned f32).
#pragma once

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "model/checkpoint.h"
#include "model/model_config.h"

namespace tessera {

struct MambaWeights {
  HostTensor in_proj;        // (in_proj_width, hidden)
  HostTensor in_proj_bias;   // (in_proj_width) or empty
  HostTensor conv_weight;    // (C, 1, K), read as (C, K)
  HostTensor conv_bias;      // (C) or empty
  HostTensor dt_bias;        // (H)
  std::vector<float> A;      // (H): -exp(A_log)
  HostTensor D;              // (H)
  HostTensor norm;           // (d_inner) gated RMSNorm weight
  HostTensor out_proj;       // (hidden, d_inner)
  HostTensor out_proj_bias;  // (hidden) or empty
};

struct AttentionWeights {
  HostTensor q_proj, k_proj, v_proj, o_proj;  // (Hq·D, hidden) (Hkv·D, hidden) ×2, (hidden, Hq·D)
  HostTensor q_bias, k_bias, v_bias, o_bias;  // or empty
};

struct MlpWeights {
  HostTensor gate_proj;  // (I, hidden), SwiGLU only
  HostTensor up_proj;    // (I, hidden)
  HostTensor down_proj;  // (hidden, I)
  HostTensor gate_bias, up_bias, down_bias;  // or empty
};

// A mixture-of-experts block (DESIGN.md, "Mixture of experts"). The routed
// experts are stacked into one tensor per projection however the checkpoint
// stores them (nemotron_h: one tensor per expert; granitemoehybrid: stacked,
// gate and up fused), so every backend sees one layout.
struct MoeWeights {
  HostTensor router;           // (E, hidden) fp32 always (routing is computed in fp32); empty when E == 0
  HostTensor correction_bias;  // (E) nemotron_h e_score_correction_bias, or empty
  HostTensor experts_up;       // (E, I, hidden) relu², or (E, 2I, hidden) SwiGLU [gate | up]; owned fp32
  HostTensor experts_down;     // (E, hidden, I); owned fp32
  HostTensor shared_up;        // (Is, hidden) relu², or (2Is, hidden) SwiGLU [gate | up]; empty: no shared expert
  HostTensor shared_down;      // (hidden, Is)
};

struct BlockWeights {
  BlockSpec spec;
  HostTensor norm;    // (hidden)
  int64_t state_slot = 0;  // index among blocks of the same kind (per-kind cache slot)
  std::variant<MambaWeights, AttentionWeights, MlpWeights, MoeWeights> op;
};

// How matrices (projections, embedding, lm_head) are held on the host.
enum class WeightStorage {
  kFloat32,           // fp32 (the CPU backend computes on them)
  kMatricesAsStored,  // views of the checkpoint bytes in their dtype (HostTensor::stored): a
                      // GPU backend uploads bf16 as is; vectors are fp32 either way
};

struct ModelWeights {
  ModelConfig config;
  WeightStorage storage = WeightStorage::kFloat32;
  std::string model_dir;
  std::unique_ptr<Checkpoint> checkpoint;  // owns the mappings the tensors view
  HostTensor embedding;   // (vocab, hidden)
  HostTensor final_norm;  // (hidden)
  HostTensor lm_head;     // (vocab, hidden); views the embedding when tied
  std::vector<BlockWeights> blocks;
};

// One tensor the layout expects: its name, shape, and whether it is a matrix
// (a projection, the embedding or lm_head) or a vector (norms, biases, ...).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool matrix = false;
};

// The tensors a checkpoint of `config` must hold, in load order (optional
// biases only where the config says they exist; a tied lm_head once; MoE
// layers with latent projections, which are not served, left out).
std::vector<TensorSpec> ExpectedTensors(const ModelConfig& config);

// Whether the MoE layers of `config` are loaded (all but latent-projection MoE).
bool MoeLayersServed(const ModelConfig& config);

// Loads DIR/config.json and the checkpoint in DIR; FAILED_PRECONDITION naming
// the reasons when the config is understood but not served yet (CheckServed).
absl::StatusOr<std::unique_ptr<ModelWeights>> LoadModelWeights(const std::string& model_dir,
                                                               WeightStorage storage = WeightStorage::kFloat32);

}  // namespace tessera
