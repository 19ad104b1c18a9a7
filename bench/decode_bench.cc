// One worker's decode in process, without the server around it: loads a
// checkpoint onto the CUDA engine, prefills random prompts and times decode
// steps (Engine::DecodeStep, the pass the worker's decode scheduler runs):
//  - one stream at each --contexts length: ms per token;
//  - --batches streams at each --batch-contexts length in one step: step ms
//    and tokens/s.
// Each is the median of --steps steps after --warmup untimed ones; a step
// ends with its logits on the host (as the scheduler's do), so wall time is
// the step's time. Every case is timed eagerly and then on the CUDA graphs
// of decode steps (worker/decode_graphs.h) over the same states, one after
// the other (the graph's warm-up steps include its capture). Beside each, the bandwidth floor: the bytes a step must
// move (every weight matrix once, the routed experts the batch is expected to
// touch, each stream's K/V read and conv/SSM state read and written) at the
// device-to-device copy rate measured here with CUDA events.
// With --profile-steps N, the last N graph steps of the first one-stream case
// run between cudaProfilerStart and cudaProfilerStop, for a profiler started
// with profiling off (`ncu --profile-from-start off`: each kernel of a step).
//
//   decode_bench --model DIR [--contexts 4096,16384,65536] [--batch-contexts 4096,16384] [--batches 8,32]
//                [--steps 32] [--warmup 4] [--precision bf16|fp32] [--device 0] [--profile-steps 0]
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "bench/cuda_bench_util.h"
#include "bench/engine_bench_util.h"
#include "worker/engine.h"
#include "worker/sampler.h"

namespace tessera {
namespace {

struct Args {
  bench::EngineFlags engine;
  std::vector<int64_t> contexts = {4096, 16384, 65536};
  std::vector<int64_t> batch_contexts = {4096, 16384};
  std::vector<int64_t> batches = {8, 32};
  int steps = 32;
  int warmup = 4;
  int profile_steps = 0;
};

bool ParseArgs(int argc, char** argv, Args& a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    const bench::FlagParse common = bench::ParseEngineFlag(flag, value, a.engine);
    if (common == bench::FlagParse::kBadValue) return false;
    if (common == bench::FlagParse::kTaken) continue;
    if (flag == "--contexts") {
      if (!bench::ParsePositiveList(value, a.contexts)) return false;
    } else if (flag == "--batch-contexts") {
      if (!bench::ParsePositiveList(value, a.batch_contexts)) return false;
    } else if (flag == "--batches") {
      if (!bench::ParsePositiveList(value, a.batches)) return false;
    } else if (flag == "--steps") {
      if (!absl::SimpleAtoi(value, &a.steps) || a.steps <= 0) return false;
    } else if (flag == "--profile-steps") {
      if (!absl::SimpleAtoi(value, &a.profile_steps) || a.profile_steps < 0) return false;
    } else if (flag == "--warmup") {
      if (!absl::SimpleAtoi(value, &a.warmup) || a.warmup < 0) return false;
    } else {
      return false;
    }
  }
  return !a.engine.model.empty() && argc % 2 == 1;
}

// Bytes of the weight matrices one decode step of `batch` streams reads:
// every dense matrix once (the lm_head included, the embedding table not: a
// step reads `batch` of its rows), and of the routed experts those the batch
// is expected to touch under uniform routing, E · (1 - (1 - k/E)^batch).
double StepWeightBytes(const ModelConfig& c, int64_t batch, double element_bytes) {
  const double d = static_cast<double>(c.hidden_size);
  const double experts = static_cast<double>(c.moe.experts);
  const double touched =
      experts > 0 ? experts * (1 - std::pow(1 - static_cast<double>(c.moe.top_k) / experts, static_cast<double>(batch)))
                  : 0;
  const double router_bytes = c.CountBlocks(BlockKind::kMoe) * experts * d * 4;  // fp32 always
  return (bench::BlockMatrixParams(c, touched) + d * static_cast<double>(c.vocab_size)) * element_bytes + router_bytes;
}

// Device-to-device copy rate in bytes/ms (read + write), CUDA events.
double CopyBytesPerMs() {
  const size_t bytes = size_t{1} << 30;
  void *from = nullptr, *to = nullptr;
  BENCH_CHECK(cudaMalloc(&from, bytes));
  BENCH_CHECK(cudaMalloc(&to, bytes));
  BENCH_CHECK(cudaMemset(from, 1, bytes));
  const double ms = bench::MedianMs([&] { BENCH_CHECK(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice)); },
                                    2, 5);
  BENCH_CHECK(cudaFree(from));
  BENCH_CHECK(cudaFree(to));
  return 2.0 * static_cast<double>(bytes) / ms;
}

// `batch` streams, each prefilled with `context` random tokens.
std::vector<std::unique_ptr<ShardState>> Prefilled(Engine& engine, int64_t batch, int64_t context, int steps,
                                                   uint64_t& seed) {
  std::vector<std::unique_ptr<ShardState>> states;
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<int32_t> ids = bench::RandomTokenIds(context, engine.config().vocab_size, seed);
    absl::StatusOr<std::unique_ptr<ShardState>> state = engine.NewState(0, context + steps + 1);
    bench::Require(state.status());
    bench::Require(engine.Forward(**state, ids, LogitsRows::kNone).status());
    states.push_back(*std::move(state));
  }
  return states;
}

// Median ms of one decode step of every state (greedy tokens fed back); the
// last `profile` steps between cudaProfilerStart and cudaProfilerStop.
std::pair<double, double> TimeSteps(Engine& engine, std::vector<std::unique_ptr<ShardState>>& states, int warmup,
                                    int steps, int profile = 0) {
  const int64_t vocab = engine.config().vocab_size;
  std::vector<DecodeRow> rows;
  for (const auto& state : states) rows.push_back({state.get(), 0, nullptr});
  std::vector<double> ms;
  for (int s = 0; s < warmup + steps; ++s) {
    if (profile > 0 && s == warmup + steps - profile) BENCH_CHECK(cudaProfilerStart());
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<DecodeStepResult> result = engine.DecodeStep(rows);
    const double elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    bench::Require(result.status());
    for (size_t r = 0; r < rows.size(); ++r) {
      bench::Require(result->status[r]);
      rows[r].token = GreedyToken(absl::MakeConstSpan(result->logits).subspan(r * vocab, vocab));
    }
    if (s >= warmup) ms.push_back(elapsed);
  }
  if (profile > 0) BENCH_CHECK(cudaProfilerStop());
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front()};
}

int Main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, args)) {
    std::fprintf(stderr,
                 "usage: decode_bench --model DIR [--contexts 4096,16384,65536] [--batch-contexts 4096,16384] "
                 "[--batches 8,32] [--steps 32] [--warmup 4] [--precision bf16|fp32] [--device 0] "
                 "[--profile-steps 0]\n");
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Engine>> loaded = bench::LoadCudaBenchEngine(args.engine.model, args.engine.type, args.engine.device);
  bench::Require(loaded.status());
  Engine& engine = **loaded;
  // Eager, then on graphs, over the same states: (eager median, graph median, graph min).
  int profile = std::min(args.profile_steps, args.steps);  // the first case's, then none
  auto time_both = [&](std::vector<std::unique_ptr<ShardState>>& states) {
    engine.set_decode_graphs(false);
    const double eager = TimeSteps(engine, states, args.warmup, args.steps).first;
    engine.set_decode_graphs(true);
    const auto [graph, graph_min] = TimeSteps(engine, states, args.warmup, args.steps, std::exchange(profile, 0));
    return std::tuple<double, double, double>{eager, graph, graph_min};
  };
  const int steps_per_case = 2 * (args.warmup + args.steps);
  const ModelConfig& c = engine.config();
  const double element_bytes = args.engine.type == ElementType::kBF16 ? 2 : 4;
  const double copy_rate = CopyBytesPerMs();
  // The bytes a step of `batch` streams at `context` must move.
  auto floor_ms = [&](int64_t batch, int64_t context) {
    const double per_stream = static_cast<double>(engine.KvBytesPerToken()) * static_cast<double>(context) +
                              2.0 * static_cast<double>(engine.StateBytesPerRequest());
    return (StepWeightBytes(c, batch, element_bytes) + static_cast<double>(batch) * per_stream) / copy_rate;
  };
  std::printf("# %s\n# device-to-device copy: %.0f GB/s; weights read per step (batch 1): %.2f GB\n",
              engine.Describe().c_str(), copy_rate * 1e3 / 1e9, StepWeightBytes(c, 1, element_bytes) / 1e9);
  uint64_t seed = 1;

  std::printf("\n## One stream\n| context | eager ms/token | graph ms/token | graph min ms | floor ms | x floor |\n"
              "|---|---|---|---|---|---|\n");
  for (int64_t context : args.contexts) {
    std::vector<std::unique_ptr<ShardState>> states = Prefilled(engine, 1, context, steps_per_case, seed);
    const auto [eager, median, min] = time_both(states);
    std::printf("| %ld | %.3f | %.3f | %.3f | %.3f | %.2f |\n", static_cast<long>(context), eager, median, min,
                floor_ms(1, context), median / floor_ms(1, context));
    std::fflush(stdout);
  }

  std::printf("\n## Batched steps\n| streams | context | eager step ms | graph step ms | graph min ms | tokens/s | "
              "floor ms | x floor |\n|---|---|---|---|---|---|---|---|\n");
  for (int64_t context : args.batch_contexts) {
    for (int64_t batch : args.batches) {
      std::vector<std::unique_ptr<ShardState>> states =
          Prefilled(engine, batch, context, steps_per_case, seed);
      const auto [eager, median, min] = time_both(states);
      std::printf("| %ld | %ld | %.3f | %.3f | %.3f | %.0f | %.3f | %.2f |\n", static_cast<long>(batch),
                  static_cast<long>(context), eager, median, min, static_cast<double>(batch) / median * 1e3,
                  floor_ms(batch, context), median / floor_ms(batch, context));
      std::fflush(stdout);
    }
  }
  const absl::Status capture = engine.decode_graph_capture_error();
  std::printf("\n# decode graphs captured: %ld buckets; capture errors: %s\n",
              static_cast<long>(engine.decode_graphs_captured()), capture.ok() ? "none" : capture.ToString().c_str());
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) { return tessera::Main(argc, argv); }
