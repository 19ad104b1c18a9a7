// What the in-process engine benches (forward_bench, decode_bench,
// decode_during_prefill_bench, prefix_reuse_bench) share: their common flags,
// the checkpoint loaded onto the CUDA engine, random prompts, and the weight-matrix parameter
// count of the model's blocks, behind forward_bench's FLOPs (one multiply-add
// per parameter per token) and decode_bench's bytes (each parameter read once
// per decode step).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "worker/cuda/cuda_backend.h"
#include "worker/engine.h"

namespace tessera::bench {

// --model DIR, --precision bf16|fp32 and --device N.
struct EngineFlags {
  std::string model;
  ElementType type = ElementType::kBF16;
  int device = 0;
};

enum class FlagParse { kTaken, kBadValue, kNotMine };

// Takes `flag value` into `f` when the flag is one of EngineFlags'.
inline FlagParse ParseEngineFlag(const std::string& flag, const std::string& value, EngineFlags& f) {
  if (flag == "--model") {
    f.model = value;
  } else if (flag == "--precision") {
    if (value != "bf16" && value != "fp32") return FlagParse::kBadValue;
    f.type = value == "bf16" ? ElementType::kBF16 : ElementType::kF32;
  } else if (flag == "--device") {
    if (!absl::SimpleAtoi(value, &f.device)) return FlagParse::kBadValue;
  } else {
    return FlagParse::kNotMine;
  }
  return FlagParse::kTaken;
}

// "4096,65536" → {4096, 65536}; false for an empty list or a value that is not a positive integer.
inline bool ParsePositiveList(const std::string& value, std::vector<int64_t>& out) {
  out.clear();
  for (absl::string_view s : absl::StrSplit(value, ',')) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(s, &n) || n <= 0) return false;
    out.push_back(n);
  }
  return !out.empty();
}

// The checkpoint in `model_dir` on CUDA device `device`, in `type` (bf16
// keeps the checkpoint's matrices as stored; fp32 widens them).
inline absl::StatusOr<std::unique_ptr<Engine>> LoadCudaBenchEngine(const std::string& model_dir, ElementType type,
                                                                   int device) {
  const WeightStorage storage = type == ElementType::kBF16 ? WeightStorage::kMatricesAsStored : WeightStorage::kFloat32;
  ASSIGN_OR_RETURN(std::unique_ptr<ModelWeights> weights, LoadModelWeights(model_dir, storage));
  CudaEngineOptions options;
  options.device = device;
  options.type = type;
  return MakeCudaEngine(std::move(weights), options);
}

// `n` token ids in [0, vocab) from a 64-bit LCG over `seed`, which advances
// (successive calls give fresh prompts; the same seed, the same prompts).
inline std::vector<int32_t> RandomTokenIds(int64_t n, int64_t vocab, uint64_t& seed) {
  std::vector<int32_t> ids(n);  // (n)
  for (int32_t& id : ids) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    id = static_cast<int32_t>((seed >> 33) % static_cast<uint64_t>(vocab));
  }
  return ids;
}

// Every block's matrices (Mamba in/out projections, attention q/k/v/o, MLP,
// an MoE block's shared experts and `routed_experts` of its routed ones);
// the embedding, the lm_head and the MoE routers are not counted.
inline double BlockMatrixParams(const ModelConfig& c, double routed_experts) {
  const double d = static_cast<double>(c.hidden_size);
  double params = 0;
  const MambaConfig& m = c.mamba;
  params += c.CountBlocks(BlockKind::kMamba) * d * static_cast<double>(m.in_proj_width() + m.d_inner());
  const AttentionConfig& a = c.attention;
  const double q = static_cast<double>(a.num_heads * a.head_dim), kv = static_cast<double>(a.num_kv_heads * a.head_dim);
  params += c.CountBlocks(BlockKind::kAttention) * d * (2 * q + 2 * kv);
  const double gate = c.mlp.activation == MlpActivation::kSwiGlu ? 2 : 1;
  params += c.CountBlocks(BlockKind::kMlp) * d * static_cast<double>(c.mlp.intermediate_size) * (gate + 1);
  const MoeConfig& e = c.moe;
  const double moe_gate = e.activation == MlpActivation::kSwiGlu ? 2 : 1;
  params += c.CountBlocks(BlockKind::kMoe) * d * (moe_gate + 1) *
            (routed_experts * static_cast<double>(e.expert_intermediate_size) +
             static_cast<double>(e.shared_experts * e.shared_intermediate_size));
  return params;
}

}  // namespace tessera::bench
