// RunShard is the heart: admit (memory), prefill with peers (progress and
// optional logits reported), then either decode (last shard) or hold K/V for
// split-KV attention until the caller ends the shard. The caller's going away
// is watched on a side thread and wakes any peer wait at once.
#include "worker/shard_runner.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/sampler.h"

namespace tessera {
namespace {

constexpr auto kCancelPoll = std::chrono::milliseconds(20);
constexpr auto kProgressInterval = std::chrono::milliseconds(200);
constexpr auto kAdmitGrace = std::chrono::seconds(2);

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Polls `caller_gone` until stopped; the first time it says so, runs `cancel`.
class CancellationWatcher {
 public:
  CancellationWatcher(std::function<bool()> caller_gone, std::function<void()> cancel)
      : thread_([this, caller_gone = std::move(caller_gone), cancel = std::move(cancel)] {
          while (!done_.load()) {
            if (caller_gone()) {
              cancel();
              return;
            }
            std::this_thread::sleep_for(kCancelPoll);
          }
        }) {}
  ~CancellationWatcher() {
    done_.store(true);
    thread_.join();
  }

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

bool IsStopToken(const ShardRequest& r, int32_t token) {
  return std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(), token) != r.stop_token_ids.end();
}

}  // namespace

absl::Status ValidateShardRequest(const ShardRequest& r, const ModelConfig& config, int64_t max_context_tokens) {
  const int shards = static_cast<int>(r.shards.size());
  if (shards < 1) return absl::InvalidArgumentError("RunShard needs at least one shard");
  if (r.rank < 0 || r.rank >= shards) {
    return absl::InvalidArgumentError(absl::StrCat("rank must be in [0, ", shards, "). Given: ", r.rank));
  }
  int64_t expected_begin = 0;
  for (int i = 0; i < shards; ++i) {
    const ShardSpan& s = r.shards[i];
    if (s.begin != expected_begin || s.end <= s.begin) {
      return absl::InvalidArgumentError(absl::StrCat("shard ", i, " covers [", s.begin, ", ", s.end,
                                                     "); shards must be non-empty and contiguous from 0"));
    }
    if (s.address.empty()) return absl::InvalidArgumentError(absl::StrCat("shard ", i, " has no address"));
    expected_begin = s.end;
  }
  const int64_t total = r.shards.back().end + std::max(0, r.max_new_tokens);
  if (max_context_tokens > 0 && total > max_context_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("prompt + max_new_tokens must be <= ", max_context_tokens,
                                                   " (this worker's served context). Given: ", r.shards.back().end,
                                                   " + ", r.max_new_tokens));
  }
  const ShardSpan& mine = r.shards[r.rank];
  if (static_cast<int64_t>(r.token_ids.size()) != mine.end - mine.begin) {
    return absl::InvalidArgumentError(absl::StrCat("shard ", r.rank, " covers ", mine.end - mine.begin,
                                                   " tokens but ", r.token_ids.size(), " token ids were sent"));
  }
  for (size_t i = 0; i < r.token_ids.size(); ++i) {
    if (r.token_ids[i] < 0 || r.token_ids[i] >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token id at position ", mine.begin + static_cast<int64_t>(i),
                                                     " must be < vocab size ", config.vocab_size,
                                                     ". Given: ", r.token_ids[i]));
    }
  }
  return absl::OkStatus();
}

ShardRunner::ShardRunner(Engine& engine, RequestTransports& transports, ShardRunnerOptions options)
    : engine_(engine), transports_(transports), options_(std::move(options)) {
  if (options_.metrics != nullptr) options_.metrics->memory_capacity_bytes.Set(options_.memory_budget_bytes);
  PublishMemoryMetrics();
}

void ShardRunner::PublishMemoryMetrics() {
  if (options_.metrics == nullptr) return;
  options_.metrics->memory_used_bytes.Set(static_cast<double>(memory_used_bytes()));
  options_.metrics->active_requests.Set(active_requests());
}

int64_t ShardRunner::memory_used_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t used = 0;
  for (const auto& [id, shard] : shards_) used += std::max(shard->reserved_bytes, shard->actual_bytes.load());
  return used;
}

int ShardRunner::active_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(shards_.size());
}

absl::StatusOr<std::shared_ptr<ShardRunner::ActiveShard>> ShardRunner::Admit(const ShardRequest& r) {
  const bool last = r.rank == static_cast<int>(r.shards.size()) - 1;
  const int64_t prompt = static_cast<int64_t>(r.token_ids.size());
  const int64_t tokens = prompt + (last ? std::max(0, r.max_new_tokens) : 0);
  const int64_t needed =
      std::max<int64_t>(r.reserved_bytes, tokens * engine_.KvBytesPerToken() + engine_.StateBytesPerRequest());
  if (options_.max_shard_tokens > 0 && prompt > options_.max_shard_tokens) {
    return absl::ResourceExhaustedError(absl::StrCat("worker ", options_.address, " prefills at most ",
                                                     options_.max_shard_tokens, " tokens per shard (GPU memory for "
                                                     "activations); shard ", r.rank, " has ", prompt));
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (shards_.count(r.request_id) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("request ", r.request_id, " is already running here"));
  }
  auto reserved = [this] {
    int64_t used = 0;
    for (const auto& [id, shard] : shards_) used += shard->reserved_bytes;
    return used;
  };
  // The coordinator frees its reservation when a cancelled call closes; the
  // shard here frees a moment later. Wait that moment out before refusing.
  released_.wait_for(lock, kAdmitGrace, [&] { return reserved() + needed <= options_.memory_budget_bytes; });
  const int64_t used = reserved();
  if (used + needed > options_.memory_budget_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("worker ", options_.address, " has ",
                                                     options_.memory_budget_bytes - used, " bytes free, request ",
                                                     r.request_id, " needs ", needed));
  }
  auto shard = std::make_shared<ActiveShard>();
  ASSIGN_OR_RETURN(shard->state, engine_.NewState(r.shards[r.rank].begin, tokens));
  shard->reserved_bytes = needed;
  shards_[r.request_id] = shard;
  return shard;
}

void ShardRunner::Release(const std::string& request_id) {
  transports_.EndRequest(request_id);  // drops blocks that are still on their way
  {
    std::lock_guard<std::mutex> lock(mu_);
    shards_.erase(request_id);
  }
  released_.notify_all();
  PublishMemoryMetrics();
}

std::shared_ptr<ShardRunner::ActiveShard> ShardRunner::Find(const std::string& request_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = shards_.find(request_id);
  return it == shards_.end() ? nullptr : it->second;
}

RequestPeers ShardRunner::PeersOf(const ShardRequest& r, const ActiveShard& shard) const {
  RequestPeers peers;
  peers.request_id = r.request_id;
  peers.rank = r.rank;
  for (const ShardSpan& s : r.shards) peers.addresses.push_back(s.address);
  peers.timeout = r.peer_timeout.count() > 0 ? r.peer_timeout : std::chrono::milliseconds(10000);
  peers.nccl_group_id = r.nccl_group_id;
  peers.nccl_unique_id = r.nccl_unique_id;
  peers.cancelled = &shard.cancelled;
  return peers;
}

absl::Status ShardRunner::RunShard(const ShardRequest& request, ShardEvents& events,
                                   std::function<bool()> caller_gone) {
  RETURN_IF_ERROR(ValidateShardRequest(request, engine_.config(), options_.max_context_tokens));
  ASSIGN_OR_RETURN(std::shared_ptr<ActiveShard> shard, Admit(request));
  PublishMemoryMetrics();
  absl::Status status;
  {
    CancellationWatcher watcher(std::move(caller_gone), [this, shard, id = request.request_id] {
      shard->cancelled.store(true);
      transports_.EndRequest(id);  // wakes peer waits at once
    });
    status = Prefill(request, *shard, events);
    if (!status.ok() && shard->cancelled.load()) status = absl::CancelledError("request cancelled");
  }
  Release(request.request_id);
  return status;
}

absl::Status ShardRunner::Prefill(const ShardRequest& r, ActiveShard& shard, ShardEvents& events) {
  const ModelConfig& config = engine_.config();
  const int shards = static_cast<int>(r.shards.size());
  const bool last = r.rank == shards - 1;

  ShardContext ctx;
  std::unique_ptr<PeerTransport> peers;
  if (shards > 1) {
    ASSIGN_OR_RETURN(peers, transports_.ForPrefill(PeersOf(r, shard)));
    ctx.peers = peers.get();
    for (const ShardSpan& s : r.shards) ctx.shard_bounds.push_back(s.begin);
    ctx.shard_bounds.push_back(r.shards.back().end);
  }
  auto last_progress = std::chrono::steady_clock::now();
  ctx.on_layer_done = [&](int64_t done, int64_t total) -> absl::Status {
    if (shard.cancelled.load()) return absl::CancelledError("request cancelled");
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_progress < kProgressInterval) return absl::OkStatus();
    last_progress = now;
    return events.Progress(done, total, static_cast<int64_t>(r.token_ids.size()), shards);
  };

  const LogitsRows rows = r.return_logits ? LogitsRows::kAll : last ? LogitsRows::kLast : LogitsRows::kNone;
  std::vector<float> logits;
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    const auto start = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(logits, engine_.Forward(*shard.state, r.token_ids, rows, ctx));
    if (options_.metrics != nullptr) options_.metrics->prefill_step_seconds.Observe(SecondsSince(start));
    if (!last) shard.state->DropMambaStates();  // only the last shard decodes: the others keep K/V alone
    shard.actual_bytes.store(shard.state->MemoryBytes());
  }
  peers.reset();  // the prefill's exchanges are over
  PublishMemoryMetrics();
  if (r.return_logits) RETURN_IF_ERROR(events.PromptLogits(logits, config.vocab_size));
  RETURN_IF_ERROR(events.Prefilled(shard.actual_bytes.load()));

  if (!last) {  // hold the K/V for split-KV attention until the caller ends the shard
    while (!shard.cancelled.load()) std::this_thread::sleep_for(kCancelPoll);
    return absl::OkStatus();
  }
  std::vector<float> last_row(logits.end() - config.vocab_size, logits.end());
  return Decode(r, shard, std::move(last_row), events);
}

absl::Status ShardRunner::Decode(const ShardRequest& r, ActiveShard& shard, std::vector<float> logits,
                                 ShardEvents& events) {
  ShardContext ctx;
  std::unique_ptr<PeerTransport> peers;
  if (r.shards.size() > 1) {
    ASSIGN_OR_RETURN(peers, transports_.ForDecode(PeersOf(r, shard)));
    ctx.peers = peers.get();
    ctx.remote_kv = true;
  }
  Sampler sampler(r.sampling);
  FinishReason reason = FinishReason::kLength;
  int32_t generated = 0;
  while (true) {
    if (shard.cancelled.load()) return absl::CancelledError("request cancelled");
    const int32_t token = sampler.Sample(logits);
    ++generated;
    RETURN_IF_ERROR(events.Token(token, r.return_logits ? absl::Span<const float>(logits) : absl::Span<const float>()));
    if (IsStopToken(r, token)) {
      reason = FinishReason::kStopToken;
      break;
    }
    if (r.eos_token_id >= 0 && token == r.eos_token_id) {
      reason = FinishReason::kEos;
      break;
    }
    if (generated >= r.max_new_tokens) break;
    std::lock_guard<std::mutex> lock(shard.mu);
    const int32_t next[1] = {token};
    const auto start = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(logits, engine_.Forward(*shard.state, next, LogitsRows::kLast, ctx));
    if (options_.metrics != nullptr) options_.metrics->decode_step_seconds.Observe(SecondsSince(start));
    shard.actual_bytes.store(shard.state->MemoryBytes());
  }
  return events.Finished(reason, generated);
}

absl::StatusOr<AttentionPartial> ShardRunner::AttendKv(const std::string& request_id, int64_t attention_slot,
                                                       absl::Span<const float> q, int64_t q_len,
                                                       int64_t q_position0) {
  std::shared_ptr<ActiveShard> shard = Find(request_id);
  if (shard == nullptr) return absl::NotFoundError(absl::StrCat("request ", request_id, " holds no K/V here"));
  std::lock_guard<std::mutex> lock(shard->mu);
  return engine_.AttendStoredKv(*shard->state, attention_slot, q, q_len, q_position0);
}

}  // namespace tessera
