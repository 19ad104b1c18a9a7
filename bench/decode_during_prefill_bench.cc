// Does a long prefill stall the decode steps of the requests already running
// on the same worker? Issue 14 asks that it does not. On the CUDA engine the
// worker's decode scheduler and a request's prefill run on threads and
// streams of their own (Engine: Forward and DecodeStep may run at once on
// different states), so the GPU interleaves their kernels; this measures
// what that costs each side, in process, without the server:
//   1. decode steps of --streams streams at --context tokens, alone;
//   2. the same steps while another thread prefills --prefill tokens, again
//      and again, on a fresh state: without turns (the prefill in one pass),
//      then with the engine's prefill budget (--budget tokens: the prefill
//      in pieces of that many, each after the decode step in flight;
//      decode_turns.h);
//   3. that prefill alone.
// Printed: each decode step's median, 99th percentile and worst wall time
// (a step ends with its logits on the host, as the scheduler's do) in 1 and
// 2, the longest gap between two consecutive decode steps in 2 (a stall would
// show there as the length of a prefill piece), and the prefill's time alone
// and beside the decode steps.
//
//   decode_during_prefill_bench --model DIR [--streams 8] [--context 4096] [--prefill 65536]
//                               [--budget 4096] [--steps 200] [--precision bf16|fp32] [--device 0]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "bench/cuda_bench_util.h"
#include "bench/engine_bench_util.h"
#include "worker/decode_turns.h"
#include "worker/engine.h"
#include "worker/sampler.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  bench::EngineFlags engine;
  int64_t streams = 8;
  int64_t context = 4096;
  int64_t prefill = 65536;
  int64_t budget = kDefaultPrefillBudgetTokens;
  int steps = 200;
};

bool ParseArgs(int argc, char** argv, Args& a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    const bench::FlagParse common = bench::ParseEngineFlag(flag, value, a.engine);
    if (common == bench::FlagParse::kBadValue) return false;
    if (common == bench::FlagParse::kTaken) continue;
    int64_t n = 0;
    if (!absl::SimpleAtoi(value, &n) || n <= 0) return false;
    if (flag == "--streams") {
      a.streams = n;
    } else if (flag == "--context") {
      a.context = n;
    } else if (flag == "--prefill") {
      a.prefill = n;
    } else if (flag == "--budget") {
      a.budget = n;
    } else if (flag == "--steps") {
      a.steps = static_cast<int>(n);
    } else {
      return false;
    }
  }
  return !a.engine.model.empty() && argc % 2 == 1;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }


// One prefill of `ids` on a fresh state: wall ms.
double PrefillOnce(Engine& engine, const std::vector<int32_t>& ids) {
  const auto start = Clock::now();
  absl::StatusOr<std::unique_ptr<ShardState>> state = engine.NewState(0, static_cast<int64_t>(ids.size()) + 1);
  bench::Require(state.status());
  bench::Require(engine.Forward(**state, ids, LogitsRows::kLast).status());
  return Ms(Clock::now() - start);
}

struct StepTimes {
  std::vector<double> step_ms;  // (steps) each step's wall time
  double worst_gap_ms = 0;      // longest time from one step's start to the next's
};

// `steps` decode steps of every state (greedy tokens fed back).
StepTimes RunSteps(Engine& engine, std::vector<std::unique_ptr<ShardState>>& states, int steps) {
  const int64_t vocab = engine.config().vocab_size;
  std::vector<DecodeRow> rows;
  for (const auto& state : states) rows.push_back({state.get(), 0, nullptr});
  StepTimes t;
  Clock::time_point previous_start{};
  for (int s = 0; s < steps; ++s) {
    const auto start = Clock::now();
    if (s > 0) t.worst_gap_ms = std::max(t.worst_gap_ms, Ms(start - previous_start));
    previous_start = start;
    absl::StatusOr<DecodeStepResult> result = engine.DecodeStep(rows);
    t.step_ms.push_back(Ms(Clock::now() - start));
    bench::Require(result.status());
    for (size_t r = 0; r < rows.size(); ++r) {
      bench::Require(result->status[r]);
      rows[r].token = GreedyToken(absl::MakeConstSpan(result->logits).subspan(r * vocab, vocab));
    }
  }
  return t;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

int Main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, args)) {
    std::fprintf(stderr,
                 "usage: decode_during_prefill_bench --model DIR [--streams 8] [--context 4096] [--prefill 65536] "
                 "[--budget 4096] [--steps 200] [--precision bf16|fp32] [--device 0]\n");
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Engine>> loaded =
      bench::LoadCudaBenchEngine(args.engine.model, args.engine.type, args.engine.device);
  bench::Require(loaded.status());
  Engine& engine = **loaded;
  const int64_t vocab = engine.config().vocab_size;
  uint64_t seed = 1;
  const std::vector<int32_t> long_prompt = bench::RandomTokenIds(args.prefill, vocab, seed);
  std::vector<std::unique_ptr<ShardState>> states;
  const int64_t capacity = args.context + 3 * static_cast<int64_t>(args.steps) + 8;
  for (int64_t b = 0; b < args.streams; ++b) {
    absl::StatusOr<std::unique_ptr<ShardState>> state = engine.NewState(0, capacity);
    bench::Require(state.status());
    const std::vector<int32_t> prompt = bench::RandomTokenIds(args.context, vocab, seed);
    bench::Require(engine.Forward(**state, prompt, LogitsRows::kNone).status());
    states.push_back(*std::move(state));
  }
  std::printf("# %s; %ld streams at %ld tokens, a prefill of %ld tokens (pieces of %ld)\n",
              engine.Describe().c_str(), static_cast<long>(args.streams), static_cast<long>(args.context),
              static_cast<long>(args.prefill), static_cast<long>(engine.prefill_chunk_tokens()));

  RunSteps(engine, states, 8);  // warm-up of the decode path
  PrefillOnce(engine, long_prompt);  // and of the prefill path at this length
  const StepTimes alone = RunSteps(engine, states, args.steps);
  std::vector<double> prefill_alone;
  for (int i = 0; i < 3; ++i) prefill_alone.push_back(PrefillOnce(engine, long_prompt));

  // Beside the prefill: without turns, then with the budget.
  struct Beside {
    std::string name;
    StepTimes steps;
    std::vector<double> prefill_ms;
  };
  std::vector<Beside> beside;
  for (int64_t budget : {int64_t{0}, args.budget}) {
    engine.set_prefill_budget_tokens(budget);
    Beside b;
    b.name = budget == 0 ? std::string("beside the prefill, no turns")
                         : "beside the prefill, budget " + std::to_string(engine.prefill_budget_tokens());
    std::atomic<bool> stop{false};
    std::thread prefiller([&] {
      while (!stop.load()) b.prefill_ms.push_back(PrefillOnce(engine, long_prompt));
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the first prefill is under way
    b.steps = RunSteps(engine, states, args.steps);
    stop = true;
    prefiller.join();
    beside.push_back(std::move(b));
  }

  std::printf("\n| decode steps | median ms | p99 ms | worst ms | worst gap between steps ms |\n|---|---|---|---|---|\n");
  auto row = [](const std::string& name, const StepTimes& t) {
    std::printf("| %s | %.3f | %.3f | %.3f | %.3f |\n", name.c_str(), Percentile(t.step_ms, 0.5),
                Percentile(t.step_ms, 0.99), Percentile(t.step_ms, 1.0), t.worst_gap_ms);
  };
  row("alone", alone);
  for (const Beside& b : beside) row(b.name, b.steps);
  std::printf("\n| prefill of %ld tokens | median ms | runs |\n|---|---|---|\n", static_cast<long>(args.prefill));
  std::printf("| alone | %.1f | %zu |\n", Percentile(prefill_alone, 0.5), prefill_alone.size());
  for (const Beside& b : beside) {
    std::printf("| %s | %.1f | %zu |\n", b.name.c_str(), Percentile(b.prefill_ms, 0.5), b.prefill_ms.size());
  }
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) { return tessera::Main(argc, argv); }
