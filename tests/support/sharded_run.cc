// Threads, not processes: the exchange and merge logic under test is the
// layer loop's; the transport is the in-process one, whose split-KV queries
// are answered by the other shards' states as a worker's AttendKv would.
#include "tests/support/sharded_run.h"

#include <chrono>
#include <memory>
#include <thread>

#include "transport/in_process_transport.h"
#include "transport/mailbox.h"
#include "worker/sampler.h"

namespace tessera::testing {

absl::StatusOr<GreedyRun> RunShardedGreedy(Engine& engine, absl::Span<const int32_t> prompt,
                                           const std::vector<int64_t>& bounds, int steps) {
  const int size = static_cast<int>(bounds.size()) - 1;
  auto mailbox = std::make_shared<Mailbox>();
  std::vector<std::unique_ptr<ShardState>> states;
  for (int r = 0; r < size; ++r) {
    absl::StatusOr<std::unique_ptr<ShardState>> s = engine.NewState(bounds[r], bounds[r + 1] - bounds[r] + steps);
    if (!s.ok()) return s.status();
    states.push_back(*std::move(s));
  }
  const InProcessKvAnswer answer = [&](int holder, int64_t slot, absl::Span<const float> q, int64_t q_len,
                                       int64_t q_position0) {
    return engine.AttendStoredKv(*states[holder], slot, q, q_len, q_position0);
  };
  std::vector<std::unique_ptr<InProcessTransport>> transports;
  for (int r = 0; r < size; ++r) {
    transports.push_back(
        std::make_unique<InProcessTransport>(mailbox, "req", r, size, std::chrono::seconds(60), answer));
  }
  std::vector<absl::StatusOr<std::vector<float>>> logits(size, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      ShardContext ctx;
      ctx.peers = transports[r].get();
      ctx.shard_bounds = bounds;
      logits[r] = engine.Forward(*states[r], prompt.subspan(bounds[r], bounds[r + 1] - bounds[r]), LogitsRows::kAll,
                                 ctx);
    });
  }
  for (std::thread& t : threads) t.join();
  GreedyRun run;
  for (int r = 0; r < size; ++r) {
    if (!logits[r].ok()) return logits[r].status();
    run.prompt_logits.insert(run.prompt_logits.end(), logits[r]->begin(), logits[r]->end());
  }
  for (int r = 0; r + 1 < size; ++r) states[r]->DropMambaStates();  // as a worker does: only K/V stays
  ShardContext decode_ctx;
  decode_ctx.peers = transports.back().get();
  decode_ctx.remote_kv = size > 1;
  const int64_t vocab = engine.config().vocab_size;
  std::vector<float> last(run.prompt_logits.end() - vocab, run.prompt_logits.end());  // (vocab)
  for (int step = 0; step < steps; ++step) {
    const int32_t token = GreedyToken(last);
    run.tokens.push_back(token);
    run.step_logits.insert(run.step_logits.end(), last.begin(), last.end());
    if (step + 1 == steps) break;
    const int32_t next[1] = {token};
    absl::StatusOr<std::vector<float>> out = engine.Forward(*states.back(), next, LogitsRows::kLast, decode_ctx);
    if (!out.ok()) return out.status();
    last = *std::move(out);
  }
  return run;
}

}  // namespace tessera::testing
