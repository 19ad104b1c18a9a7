// `tessera make-random-model`: a nemotron_h checkpoint of any shape with
// seeded random weights, for testing and benchmarking at real model sizes
// without downloading one (the 8B-shaped default is ~1.8 GB in bf16).
//
// The config.json text is parsed with ParseModelConfig before anything is
// written, and the tensor names and shapes come from that parsed config's
// BlockSpecs, so the checkpoint is exactly what LoadModelWeights asks for.
//
// Initialisation keeps activations O(1) through the residual stream and the
// logits spread (about N(0, 1) per vocab entry), so argmax is well defined.
// Standard deviations: input projections (in_proj, q/k/v, up) 1/sqrt(fan_in);
// output projections (out_proj, o_proj, down_proj) 0.5/sqrt(fan_in·layers);
// conv weight 1/sqrt(K); embedding 1; lm_head 1/sqrt(hidden). Norms 1, D 1,
// conv bias 0, A_log = log U[1, 16], dt_bias = softplus⁻¹(dt) with dt
// log-uniform in [1e-3, 1e-1].
//
// Determinism: every 64K-element chunk of every tensor has its own PRNG
// stream derived from (seed, tensor index, chunk index), so the bytes depend
// only on the options, never on the thread count.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "model/safetensors.h"

namespace tessera {

struct RandomModelOptions {
  std::string out_dir;                           // gets config.json and model.safetensors
  std::string preset = "nemotron-h-8b-shaped";   // or "tiny", "nemotron-3-nano-shaped", "tiny-moe"
  std::string pattern;  // hybrid_override_pattern (M mamba, * attention, - MLP, E MoE); empty: the preset's
  int64_t vocab = 1024;  // 65536 prompt rows × 1024 × 4 B = 256 MiB of logits: under the gRPC limit
  uint64_t seed = 0;
  DType dtype = DType::kBF16;  // kBF16 or kF32
  int threads = 0;             // 0: every hardware thread
};

// Writes OUT/config.json and OUT/model.safetensors (creating OUT). Progress
// lines go to `progress` when not null.
absl::Status WriteRandomModel(const RandomModelOptions& options, std::ostream* progress);

int RunMakeRandomModelCommand(int argc, char** argv);

}  // namespace tessera
