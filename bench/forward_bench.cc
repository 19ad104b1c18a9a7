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
#include "bench/engine_bench_util.h"
#include "worker/engine.h"

namespace tessera {
namespace {

struct Args {
  bench::EngineFlags engine;
  std::vector<int64_t> lengths = {4096, 65536};
  int repeats = 3;
};

bool ParseArgs(int argc, char** argv, Args& a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    const bench::FlagParse common = bench::ParseEngineFlag(flag, value, a.engine);
    if (common == bench::FlagParse::kBadValue) return false;
    if (common == bench::FlagParse::kTaken) continue;
    if (flag == "--lengths") {
      if (!bench::ParsePositiveList(value, a.lengths)) return false;
    } else if (flag == "--repeats") {
      if (!absl::SimpleAtoi(value, &a.repeats) || a.repeats <= 0) return false;
    } else {
      return false;
    }
  }
  return !a.engine.model.empty() && argc % 2 == 1;
}

// Matrix parameters (every weight matrix a token's GEMMs read once; routed
// experts counted at top_k of experts) and attention FLOPs per causal L.
double ForwardFlops(const ModelConfig& c, int64_t L) {
  const double d = static_cast<double>(c.hidden_size);
  double per_token = bench::BlockMatrixParams(c, static_cast<double>(c.moe.top_k));  // multiply-adds per token
  per_token += c.CountBlocks(BlockKind::kMoe) * d * static_cast<double>(c.moe.experts);  // the routers
  per_token += d * static_cast<double>(c.vocab_size) / static_cast<double>(L);  // the last row's logits
  const AttentionConfig& a = c.attention;
  const double q = static_cast<double>(a.num_heads * a.head_dim);
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
  absl::StatusOr<std::unique_ptr<Engine>> engine = bench::LoadCudaBenchEngine(args.engine.model, args.engine.type, args.engine.device);
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
      const std::vector<int32_t> ids = bench::RandomTokenIds(L, c.vocab_size, seed);
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
