// Threads, not processes: the exchange and merge logic under test is the
// layer loop's; the transport is the in-process one, whose split-KV queries
// are answered by the other shards' states as a worker's AttendKv would.
#include "tests/support/sharded_run.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>

#include "transport/in_process_transport.h"
#include "transport/mailbox.h"
#include "worker/sampler.h"

namespace tessera::testing {

absl::StatusOr<GreedyRun> RunShardedGreedy(Engine& engine, absl::Span<const int32_t> prompt,
                                           const std::vector<int64_t>& bounds, int steps) {
  return RunShardedGreedy(engine, prompt, ContiguousPieces(bounds), steps);
}

std::unique_ptr<ShardedPrefill> RunShardedPrefill(Engine& engine, absl::Span<const int32_t> prompt,
                                                  const std::vector<ShardPiece>& pieces, int64_t extra_tokens,
                                                  LogitsRows rows, const ProgressOfRank& progress) {
  int size = 0;
  for (const ShardPiece& p : pieces) size = std::max(size, p.rank + 1);
  auto run = std::make_unique<ShardedPrefill>();
  ShardedPrefill* const held_run = run.get();  // the split-KV answers read its states wherever `run` goes
  run->held.resize(size);
  for (const ShardPiece& p : pieces) run->held[p.rank].push_back(p);
  std::vector<std::vector<int32_t>> ids(size);  // (ranks): each rank's tokens, its pieces in order
  auto mailbox = std::make_shared<Mailbox>();
  const InProcessKvAnswer answer = [&engine, held_run](int holder, int64_t slot, absl::Span<const float> q,
                                                       int64_t q_len, int64_t q_position0) {
    return engine.AttendStoredKv(*held_run->states[holder], slot, q, q_len, q_position0);
  };
  for (int r = 0; r < size; ++r) {
    for (const ShardPiece& p : run->held[r]) {
      ids[r].insert(ids[r].end(), prompt.begin() + p.begin, prompt.begin() + p.end);
    }
    absl::StatusOr<std::unique_ptr<ShardState>> s =
        engine.NewState(run->held[r].front().begin, static_cast<int64_t>(ids[r].size()) + extra_tokens);
    run->states.push_back(s.ok() ? *std::move(s) : nullptr);
    run->logits.push_back(s.ok() ? absl::StatusOr<std::vector<float>>(absl::UnknownError("not run")) : s.status());
    run->transports.push_back(
        std::make_unique<InProcessTransport>(mailbox, "req", r, size, std::chrono::seconds(60), answer));
  }
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    if (run->states[r] == nullptr) continue;
    threads.emplace_back([&, r] {
      ShardContext ctx;
      ctx.peers = run->transports[r].get();
      ctx.pieces = pieces;
      if (progress) ctx.on_layer_done = progress(r);
      run->logits[r] = engine.Forward(*run->states[r], ids[r], rows, ctx);
    });
  }
  for (std::thread& t : threads) t.join();
  return run;
}

absl::StatusOr<GreedyRun> RunShardedGreedy(Engine& engine, absl::Span<const int32_t> prompt,
                                           const std::vector<ShardPiece>& pieces, int steps) {
  std::unique_ptr<ShardedPrefill> prefill = RunShardedPrefill(engine, prompt, pieces, steps, LogitsRows::kAll);
  const int size = static_cast<int>(prefill->states.size());
  std::vector<std::vector<ShardPiece>>& held = prefill->held;
  std::vector<std::unique_ptr<ShardState>>& states = prefill->states;
  std::vector<std::unique_ptr<InProcessTransport>>& transports = prefill->transports;
  std::vector<absl::StatusOr<std::vector<float>>>& logits = prefill->logits;
  const int64_t vocab = engine.config().vocab_size;
  GreedyRun run;
  run.prompt_logits.resize(prompt.size() * vocab);  // (prompt, vocab), by position
  for (int r = 0; r < size; ++r) {
    if (!logits[r].ok()) return logits[r].status();
    int64_t row = 0;
    for (const ShardPiece& p : held[r]) {
      std::copy(logits[r]->begin() + row * vocab, logits[r]->begin() + (row + p.len()) * vocab,
                run.prompt_logits.begin() + p.begin * vocab);
      row += p.len();
    }
  }
  const int decoder = pieces.back().rank;  // holds the prompt's end
  for (int r = 0; r < size; ++r) {
    if (r != decoder) states[r]->DropMambaStates();  // as a worker does: only K/V stays
  }
  ShardContext decode_ctx;
  decode_ctx.peers = transports[decoder].get();
  decode_ctx.remote_kv = size > 1;
  std::vector<float> last(run.prompt_logits.end() - vocab, run.prompt_logits.end());  // (vocab)
  for (int step = 0; step < steps; ++step) {
    const int32_t token = GreedyToken(last);
    run.tokens.push_back(token);
    run.step_logits.insert(run.step_logits.end(), last.begin(), last.end());
    if (step + 1 == steps) break;
    const int32_t next[1] = {token};
    absl::StatusOr<std::vector<float>> out = engine.Forward(*states[decoder], next, LogitsRows::kLast, decode_ctx);
    if (!out.ok()) return out.status();
    last = *std::move(out);
  }
  return run;
}

}  // namespace tessera::testing
