// Threads, not processes: the exchange and merge logic under test is the
// engine's; the transport is the in-process LocalPeerGroup.
#include "tests/support/sharded_run.h"

#include <chrono>
#include <memory>
#include <thread>

#include "worker/local_peer_group.h"
#include "worker/sampler.h"

namespace tessera::testing {
namespace {

// Other shards' K/V, answered in process as a worker's AttendKv RPC would.
class InProcessRemoteKv : public RemoteKvAttention {
 public:
  InProcessRemoteKv(Engine& engine, std::vector<const ShardState*> others)
      : engine_(engine), others_(std::move(others)) {}
  absl::StatusOr<std::vector<AttentionPartial>> Attend(int64_t slot, absl::Span<const float> q, int64_t q_len,
                                                       int64_t q_position0) override {
    std::vector<AttentionPartial> parts;
    for (const ShardState* s : others_) {
      absl::StatusOr<AttentionPartial> p = engine_.AttendStoredKv(*s, slot, q, q_len, q_position0);
      if (!p.ok()) return p.status();
      parts.push_back(*std::move(p));
    }
    return parts;
  }

 private:
  Engine& engine_;
  std::vector<const ShardState*> others_;
};

}  // namespace

absl::StatusOr<GreedyRun> RunShardedGreedy(Engine& engine, absl::Span<const int32_t> prompt,
                                           const std::vector<int64_t>& bounds, int steps) {
  const int size = static_cast<int>(bounds.size()) - 1;
  auto mailbox = std::make_shared<PeerMailbox>();
  std::vector<std::unique_ptr<LocalPeerGroup>> groups;
  std::vector<std::unique_ptr<ShardState>> states;
  for (int r = 0; r < size; ++r) {
    groups.push_back(std::make_unique<LocalPeerGroup>(mailbox, "req", r, size, std::chrono::seconds(60)));
    absl::StatusOr<std::unique_ptr<ShardState>> s = engine.NewState(bounds[r], bounds[r + 1] - bounds[r] + steps);
    if (!s.ok()) return s.status();
    states.push_back(*std::move(s));
  }
  std::vector<absl::StatusOr<std::vector<float>>> logits(size, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      ShardContext ctx;
      ctx.peers = groups[r].get();
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
  std::vector<const ShardState*> others;
  for (int r = 0; r + 1 < size; ++r) {
    states[r]->DropMambaStates();  // as a worker does: only K/V stays
    others.push_back(states[r].get());
  }
  InProcessRemoteKv remote(engine, others);
  ShardContext decode_ctx;
  decode_ctx.remote_kv = size > 1 ? &remote : nullptr;
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
