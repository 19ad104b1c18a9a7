// Prefill once, ask many times, on one worker in process: a document of D
// random tokens then a question of Q, through ShardRunner::RunShard (the
// worker's own request path: admission, prefix cache, prefill, first token)
// on the CUDA engine. Times the first token of
//   cold:   the document + a question with the cache bypassed (no block cuts),
//   first:  the document + question 1 through the cache (cut at every block,
//           keeping each block's state),
//   warm i: the document + question i (2, 3, 4): resumes after the cached
//           blocks of the document and prefills the rest,
// and prints each with its cached tokens and the ratio warm / first (issue
// 15's target: <= 5% at D = 64K, Q = 64 on an 8B-shaped model).
//
//   tessera make-random-model --out /tmp/m8b   (8B-shaped, as in bench/RESULTS.md)
//   prefix_reuse_bench --model /tmp/m8b [--document 65536] [--question 64] [--block 4096]
//                      [--budget-mb 40960] [--precision bf16|fp32] [--device 0]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/engine_bench_util.h"
#include "common/status_macros.h"
#include "worker/chunked_prefill.h"
#include "worker/engine.h"
#include "worker/prefix_cache.h"
#include "worker/shard_runner.h"

namespace tessera {
namespace {

struct Args {
  bench::EngineFlags engine;
  int64_t document = 65536;
  int64_t question = 64;
  int64_t block = -1;  // the worker's default
  int64_t budget_mb = 40960;
};

bool ParseArgs(int argc, char** argv, Args& a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    const bench::FlagParse common = bench::ParseEngineFlag(flag, value, a.engine);
    if (common == bench::FlagParse::kBadValue) return false;
    if (common == bench::FlagParse::kTaken) continue;
    int64_t* target = flag == "--document"    ? &a.document
                      : flag == "--question"  ? &a.question
                      : flag == "--block"     ? &a.block
                      : flag == "--budget-mb" ? &a.budget_mb
                                              : nullptr;
    if (target == nullptr || !absl::SimpleAtoi(value, target) || *target <= 0) return false;
  }
  return !a.engine.model.empty() && argc % 2 == 1;
}

class NoPeers final : public RequestTransports {
 public:
  absl::StatusOr<std::unique_ptr<PeerTransport>> ForPrefill(const RequestPeers&) override {
    return absl::FailedPreconditionError("one worker");
  }
  absl::StatusOr<std::unique_ptr<PeerTransport>> ForDecode(const RequestPeers&) override {
    return absl::FailedPreconditionError("one worker");
  }
  void BeginRequest(const std::string&, const std::string&) override {}
  void EndRequest(const std::string&, const std::string&) override {}
  int64_t PendingBytes() override { return 0; }
  std::vector<std::string> Offered() const override { return {"none"}; }
};

// Time to the first token, and how much of the prompt was cached.
class FirstToken final : public ShardEvents {
 public:
  explicit FirstToken(std::chrono::steady_clock::time_point start) : start_(start) {}
  absl::Status Progress(int64_t, int64_t, int64_t, int) override { return absl::OkStatus(); }
  absl::Status PromptLogits(absl::Span<const float>, int64_t) override { return absl::OkStatus(); }
  absl::Status Prefilled(int64_t, int64_t cached) override {
    cached_ = cached;
    return absl::OkStatus();
  }
  absl::Status Token(int32_t, absl::Span<const float>) override {
    if (ms_ < 0) ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
    return absl::OkStatus();
  }
  absl::Status Finished(FinishReason, int32_t) override { return absl::OkStatus(); }
  double ms() const { return ms_; }
  int64_t cached() const { return cached_; }

 private:
  std::chrono::steady_clock::time_point start_;
  double ms_ = -1;
  int64_t cached_ = 0;
};


int Main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, args)) {
    std::fprintf(stderr,
                 "usage: prefix_reuse_bench --model DIR [--document 65536] [--question 64] [--block 4096] "
                 "[--budget-mb 40960] [--precision bf16|fp32] [--device 0]\n");
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      bench::LoadCudaBenchEngine(args.engine.model, args.engine.type, args.engine.device);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", std::string(engine.status().message()).c_str());
    return 1;
  }
  Engine& e = **engine;
  const ModelConfig& c = e.config();
  ShardRunnerOptions options;
  options.memory_budget_bytes = args.budget_mb << 20;
  options.max_shard_tokens = e.PrefillTokenLimit(options.memory_budget_bytes);
  absl::StatusOr<int64_t> piece = ChoosePrefillChunkTokens(0, options.max_shard_tokens, c.mamba.chunk_size);
  absl::StatusOr<int64_t> block = ChoosePrefixBlockTokens(args.block, c.mamba.chunk_size);
  if (!piece.ok() || !block.ok()) {
    std::fprintf(stderr, "%s\n", std::string((!piece.ok() ? piece.status() : block.status()).message()).c_str());
    return 1;
  }
  e.set_prefill_chunk_tokens(*piece);
  options.prefix_block_tokens = *block;
  NoPeers peers;
  ShardRunner runner(e, peers, options);
  uint64_t seed = 1;
  const std::vector<int32_t> document = bench::RandomTokenIds(args.document, c.vocab_size, seed);
  int next_id = 0;
  // (TTFT ms, cached tokens) of the document + `question_tokens` fresh tokens.
  auto ask = [&](const std::vector<int32_t>& prefix, int64_t question_tokens,
                 bool bypass) -> absl::StatusOr<std::pair<double, int64_t>> {
    ShardRequest r;
    r.request_id = absl::StrCat("bench-", next_id++);
    r.secret = "0123456789abcdef0123456789abcdef";
    r.token_ids = prefix;
    const std::vector<int32_t> question = bench::RandomTokenIds(question_tokens, c.vocab_size, seed);
    r.token_ids.insert(r.token_ids.end(), question.begin(), question.end());
    r.shards = {{"in-process", 0, static_cast<int64_t>(r.token_ids.size())}};
    r.max_new_tokens = 1;
    r.bypass_prefix_cache = bypass;
    FirstToken events(std::chrono::steady_clock::now());
    RETURN_IF_ERROR(runner.RunShard(r, events, [] { return false; }));
    return std::make_pair(events.ms(), events.cached());
  };
  std::printf("# %s; document %ld + question %ld tokens, blocks of %ld, prefill pieces of %ld\n",
              e.Describe().c_str(), static_cast<long>(args.document), static_cast<long>(args.question),
              static_cast<long>(*block), static_cast<long>(*piece));
  // Warm-up (cuBLAS handles, the memory pool's first mapping): a short request of its own.
  if (auto w = ask({}, std::min<int64_t>(args.document, 4096), true); !w.ok()) {
    std::fprintf(stderr, "warm-up: %s\n", std::string(w.status().message()).c_str());
    return 1;
  }
  std::printf("| request | TTFT ms | cached tokens | / first |\n|---|---|---|---|\n");
  absl::StatusOr<std::pair<double, int64_t>> t = ask(document, args.question, true);
  if (!t.ok()) {
    std::fprintf(stderr, "cold: %s\n", std::string(t.status().message()).c_str());
    return 1;
  }
  std::printf("| cold (bypass) | %.2f | %ld | |\n", t->first, static_cast<long>(t->second));
  t = ask(document, args.question, false);
  if (!t.ok()) {
    std::fprintf(stderr, "first: %s\n", std::string(t.status().message()).c_str());
    return 1;
  }
  const double first = t->first;
  std::printf("| first (keeps blocks) | %.2f | %ld | 100%% |\n", first, static_cast<long>(t->second));
  for (int q = 2; q <= 4; ++q) {
    t = ask(document, args.question, false);
    if (!t.ok()) {
      std::fprintf(stderr, "question %d: %s\n", q, std::string(t.status().message()).c_str());
      return 1;
    }
    std::printf("| question %d | %.2f | %ld | %.2f%% |\n", q, t->first, static_cast<long>(t->second),
                100.0 * t->first / first);
  }
  std::printf("# prefix cache: %ld blocks, %.1f MiB\n", static_cast<long>(runner.prefix_cache().blocks()),
              static_cast<double>(runner.prefix_cache().bytes()) / (1 << 20));
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) { return tessera::Main(argc, argv); }
