// One worker's prefill in process, without the server around it: loads a
// checkpoint onto the CUDA engine and times Engine::Forward over L random
// token ids (a fresh state per run, last row's logits, as a worker's
// prefill does). Prints the median wall time of the repeats after one
// untimed warm-up, tokens/s and the achieved TFLOP/s of the model's dense
// FLOPs (2 · matrix params · L) plus causal attention (2 · 2 · L² / 2 · Hq · D
// per attention layer). Run it under `ncu --metrics gpu__time_duration.sum`
// for the time of each kernel.
//
//   forward_bench --model DIR [--lengths 4096,65536] [--repeats 3] [--precision bf16|fp32] [--device 0]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "model/model_weights.h"
#include "worker/cuda/cuda_backend.h"
#include "worker/engine.h"

namespace tessera {
namespace {

struct Args {
  std::string model;
  std::vector<int64_t> lengths = {4096, 65536};
  int repeats = 3;
  ElementType type = ElementType::kBF16;
  int device = 0;
};

bool ParseArgs(int argc, char** argv, Args& a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--model") {
      a.model = value;
    } else if (flag == "--lengths") {
      a.lengths.clear();
      for (absl::string_view s : absl::StrSplit(value, ',')) {
        int64_t n = 0;
        if (!absl::SimpleAtoi(s, &n) || n <= 0) return false;
        a.lengths.push_back(n);
      }
    } else if (flag == "--repeats") {
      if (!absl::SimpleAtoi(value, &a.repeats) || a.repeats <= 0) return false;
    } else if (flag == "--precision") {
      if (value != "bf16" && value != "fp32") return false;
      a.type = value == "bf16" ? ElementType::kBF16 : ElementType::kF32;
    } else if (flag == "--device") {
      if (!absl::SimpleAtoi(value, &a.device)) return false;
    } else {
      return false;
    }
  }
  return !a.model.empty() && argc % 2 == 1;
}

// Matrix parameters (every weight matrix a token's GEMMs read once; routed
// experts counted at top_k of experts) and attention FLOPs per causal L.
double ForwardFlops(const ModelConfig& c, int64_t L) {
  const double d = static_cast<double>(c.hidden_size);
  double per_token = 0;  // multiply-adds per token
  const MambaConfig& m = c.mamba;
  per_token += c.CountBlocks(BlockKind::kMamba) * d * static_cast<double>(m.in_proj_width() + m.d_inner());
  const AttentionConfig& a = c.attention;
  const double q = static_cast<double>(a.num_heads * a.head_dim), kv = static_cast<double>(a.num_kv_heads * a.head_dim);
  per_token += c.CountBlocks(BlockKind::kAttention) * d * (2 * q + 2 * kv);
  const double gate = c.mlp.activation == MlpActivation::kSwiGlu ? 2 : 1;
  per_token += c.CountBlocks(BlockKind::kMlp) * d * static_cast<double>(c.mlp.intermediate_size) * (gate + 1);
  const MoeConfig& e = c.moe;
  const double moe_gate = e.activation == MlpActivation::kSwiGlu ? 2 : 1;
  per_token += c.CountBlocks(BlockKind::kMoe) * d *
               (static_cast<double>(e.experts) +
                static_cast<double>(e.top_k * e.expert_intermediate_size) * (moe_gate + 1) +
                static_cast<double>(e.shared_experts * e.shared_intermediate_size) * (moe_gate + 1));
  per_token += d * static_cast<double>(c.vocab_size) / static_cast<double>(L);  // the last row's logits
  const double attention = c.CountBlocks(BlockKind::kAttention) * 2.0 * static_cast<double>(L) *
                           static_cast<double>(L) * q;  // QKᵀ and PV, causal half: 2·(2·L²/2·Hq·D)
  return 2 * per_token * static_cast<double>(L) + attention;
}

int Main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, args)) {
    std::fprintf(stderr,
                 "usage: forward_bench --model DIR [--lengths 4096,65536] [--repeats 3] [--precision bf16|fp32] "
                 "[--device 0]\n");
    return 2;
  }
  const WeightStorage storage =
      args.type == ElementType::kBF16 ? WeightStorage::kMatricesAsStored : WeightStorage::kFloat32;
  absl::StatusOr<std::unique_ptr<ModelWeights>> weights = LoadModelWeights(args.model, storage);
  if (!weights.ok()) {
    std::fprintf(stderr, "%s\n", std::string(weights.status().message()).c_str());
    return 1;
  }
  CudaEngineOptions options;
  options.device = args.device;
  options.type = args.type;
  absl::StatusOr<std::unique_ptr<Engine>> engine = MakeCudaEngine(std::move(*weights), options);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", std::string(engine.status().message()).c_str());
    return 1;
  }
  const ModelConfig& c = (*engine)->config();
  std::printf("# %s\n", (*engine)->Describe().c_str());
  std::printf("| L | median ms | min ms | tokens/s | TFLOP/s |\n|---|---|---|---|---|\n");
  uint64_t seed = 1;
  for (int64_t L : args.lengths) {
    std::vector<double> ms;
    for (int r = 0; r <= args.repeats; ++r) {  // run 0 warms up
      std::vector<int32_t> ids(L);
      for (int32_t& id : ids) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        id = static_cast<int32_t>((seed >> 33) % static_cast<uint64_t>(c.vocab_size));
      }
      absl::StatusOr<std::unique_ptr<ShardState>> state = (*engine)->NewState(0, L + 1);
      if (!state.ok()) {
        std::fprintf(stderr, "L %ld: %s\n", static_cast<long>(L), std::string(state.status().message()).c_str());
        return 1;
      }
      const auto start = std::chrono::steady_clock::now();
      absl::StatusOr<std::vector<float>> logits = (*engine)->Forward(**state, ids, LogitsRows::kLast);
      const double elapsed =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (!logits.ok()) {
        std::fprintf(stderr, "L %ld: %s\n", static_cast<long>(L), std::string(logits.status().message()).c_str());
        return 1;
      }
      if (r > 0) ms.push_back(elapsed);
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    std::printf("| %ld | %.2f | %.2f | %.0f | %.0f |\n", static_cast<long>(L), median, ms.front(),
                static_cast<double>(L) / median * 1e3, ForwardFlops(c, L) / (median * 1e-3) / 1e12);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) { return tessera::Main(argc, argv); }
