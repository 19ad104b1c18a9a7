// RunShard is the heart: admit (memory), prefill with peers (progress and
// optional logits reported), then either decode (last shard) or hold K/V for
// split-KV attention until the caller ends the shard. The caller's going away
// is watched on a side thread and wakes any peer wait at once.
#include "worker/shard_runner.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "worker/sampler.h"

namespace tessera {
namespace {

constexpr auto kCancelPoll = std::chrono::milliseconds(20);
constexpr auto kProgressInterval = std::chrono::milliseconds(200);
constexpr auto kAdmitGrace = std::chrono::seconds(2);
constexpr absl::string_view kNoKvHere = "holds no K/V here";

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

int64_t SatAdd(int64_t a, int64_t b) {
  int64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? INT64_MAX : sum;
}

// Compares every byte whatever the first difference, so that timing does
// not tell how much of a guessed secret was right.
bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

DecodeStopRules StopRulesOf(const ShardRequest& r) {
  DecodeStopRules rules;
  rules.stop_token_ids = r.stop_token_ids;
  rules.eos_token_id = r.eos_token_id;
  rules.max_new_tokens = r.max_new_tokens;
  return rules;
}

DecodeSchedulerOptions DecoderOptionsOf(const ShardRunnerOptions& options) {
  DecodeSchedulerOptions decoder;
  decoder.max_batch = options.max_decode_batch;
  decoder.metrics = options.metrics;
  return decoder;
}

}  // namespace

ShardLimits LimitsOf(const ShardRunnerOptions& options) {
  ShardLimits limits;
  limits.memory_budget_bytes = options.memory_budget_bytes;
  limits.max_context_tokens = options.max_context_tokens;
  limits.max_new_tokens_limit = options.max_new_tokens_limit;
  return limits;
}

ShardLengthBounds ShardLengthBoundsOf(const Engine& engine, const ShardRunnerOptions& options) {
  ShardLengthBounds bounds;
  bounds.max_context_tokens = options.max_context_tokens;
  bounds.memory_budget_bytes = options.memory_budget_bytes;
  bounds.kv_bytes_per_token = engine.KvBytesPerToken();
  bounds.state_bytes_per_request = engine.StateBytesPerRequest();
  return bounds;
}

ShardRunner::ShardRunner(Engine& engine, RequestTransports& transports, ShardRunnerOptions options)
    : engine_(engine), transports_(transports), options_(std::move(options)),
      prefix_cache_(engine_, options_.prefix_block_tokens, options_.metrics),
      decoder_(engine_, DecoderOptionsOf(options_)) {
  if (options_.metrics != nullptr) options_.metrics->memory_capacity_bytes.Set(options_.memory_budget_bytes);
  PublishMemoryMetrics();
}

void ShardRunner::PublishMemoryMetrics() {
  if (options_.metrics == nullptr) return;
  options_.metrics->memory_used_bytes.Set(static_cast<double>(memory_used_bytes()));
  options_.metrics->active_requests.Set(active_requests());
}

int64_t ShardRunner::memory_used_bytes() const {
  const int64_t pending = transports_.PendingBytes();  // peer blocks not yet taken
  std::lock_guard<std::mutex> lock(mu_);
  return SatAdd(pending, UsedLocked());
}

int64_t ShardRunner::UsedLocked() const {
  int64_t used = 0;
  for (const auto& [id, shard] : shards_) {
    used = SatAdd(used, std::max(shard->reserved_bytes, shard->actual_bytes.load()));
  }
  return used;
}

int64_t ShardRunner::CacheRoom() const { return std::max<int64_t>(0, options_.memory_budget_bytes - memory_used_bytes()); }

int64_t ShardRunner::DropPrefixCache() {
  const int64_t freed = prefix_cache_.Drop();
  released_.notify_all();
  return freed;
}

int ShardRunner::active_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(shards_.size());
}

absl::StatusOr<std::shared_ptr<ShardRunner::ActiveShard>> ShardRunner::Admit(const ShardRequest& r) {
  const int64_t prompt = static_cast<int64_t>(r.token_ids.size());
  const int64_t tokens = ShardTokens(r);
  const int64_t needed = ShardMemoryBytes(r, engine_.KvBytesPerToken(), engine_.StateBytesPerRequest());
  // A shard of several runs one pass a round (its exchanges need all of its
  // piece of the round); a shard alone in pieces (Engine::Forward).
  const int64_t piece = engine_.prefill_chunk_tokens();
  const bool sharded = r.shards.size() > 1;
  const std::vector<ShardPiece> pieces = PlanPieces(r);
  int64_t pass = sharded || piece <= 0 ? prompt : std::min(prompt, piece);
  if (sharded) {
    const std::vector<int64_t> rounds = RoundTokens(pieces, r.rank);  // (rounds)
    pass = *std::max_element(rounds.begin(), rounds.end());
  }
  if (options_.max_shard_tokens > 0 && pass > options_.max_shard_tokens) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "worker ", options_.address, " prefills at most ", options_.max_shard_tokens,
        " tokens in one pass (GPU memory for activations, or --max-pass-tokens); shard ", r.rank, " of ",
        r.shards.size(), " has ", prompt,
        sharded ? absl::StrCat(" in ", r.prefill_rounds, " rounds, one pass of up to ", pass, " a round")
                : absl::StrCat(" in passes of ", pass)));
  }
  const int64_t budget = options_.memory_budget_bytes;
  if (needed > budget) {
    return absl::ResourceExhaustedError(absl::StrCat("worker ", options_.address, " has a budget of ", budget,
                                                     " bytes, request ", r.request_id, " needs ", needed));
  }
  std::unique_lock<std::mutex> lock(mu_);
  auto running = [&] { return shards_.count(r.request_id) > 0; };
  if (running()) return absl::AlreadyExistsError(absl::StrCat("request ", r.request_id, " is already running here"));
  // Every reservation was admitted within the budget, so their sum is too.
  auto reserved = [this] {
    int64_t used = 0;
    for (const auto& [id, shard] : shards_) used = SatAdd(used, shard->reserved_bytes);
    return used;
  };
  auto fits = [&] { return reserved() <= budget - needed; };
  // Running shards come first: the prefix cache gives up what this one needs.
  auto evict_cache = [&] { prefix_cache_.EvictTo(budget - needed - std::max(reserved(), UsedLocked())); };
  evict_cache();
  // The coordinator frees its reservation when a cancelled call closes; the
  // shard here frees a moment later. Wait that moment out before refusing.
  released_.wait_for(lock, kAdmitGrace, fits);
  evict_cache();
  // The lock was let go while waiting: the same id may have been admitted meanwhile.
  if (running()) return absl::AlreadyExistsError(absl::StrCat("request ", r.request_id, " is already running here"));
  if (!fits()) {
    return absl::ResourceExhaustedError(absl::StrCat("worker ", options_.address, " has ", budget - reserved(),
                                                     " bytes free, request ", r.request_id, " needs ", needed));
  }
  auto shard = std::make_shared<ActiveShard>();
  shard->secret = r.secret;
  const auto first = std::find_if(pieces.begin(), pieces.end(), [&](const ShardPiece& p) { return p.rank == r.rank; });
  ASSIGN_OR_RETURN(shard->state, engine_.NewState(first == pieces.end() ? 0 : first->begin, tokens));
  shard->reserved_bytes = needed;
  shards_[r.request_id] = shard;
  transports_.BeginRequest(r.request_id, r.secret);  // its peers' blocks wait for it from now on
  return shard;
}

void ShardRunner::Release(const ShardRequest& r) {
  transports_.EndRequest(r.request_id, r.secret);  // drops blocks that are still on their way
  {
    std::lock_guard<std::mutex> lock(mu_);
    shards_.erase(r.request_id);
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
  peers.secret = r.secret;
  peers.rank = r.rank;
  for (const ShardSpan& s : r.shards) peers.addresses.push_back(s.address);
  // Capped: a request may not keep this worker waiting on a peer for longer.
  peers.timeout =
      std::min(r.peer_timeout.count() > 0 ? r.peer_timeout : kDefaultPeerTimeout, options_.max_peer_timeout);
  peers.nccl_group_id = r.nccl_group_id;
  peers.nccl_unique_id = r.nccl_unique_id;
  peers.cancelled = &shard.cancelled;
  return peers;
}

absl::Status ShardRunner::RunShard(const ShardRequest& request, ShardEvents& events,
                                   std::function<bool()> caller_gone) {
  RETURN_IF_ERROR(ValidateShardRequest(request, engine_.config(), LimitsOf(options_)));
  ASSIGN_OR_RETURN(std::shared_ptr<ActiveShard> shard, Admit(request));
  PublishMemoryMetrics();
  absl::Status status;
  {
    CancellationWatcher watcher(std::move(caller_gone), [this, shard, &request] {
      shard->cancelled.store(true);
      transports_.EndRequest(request.request_id, request.secret);  // wakes peer waits at once
    });
    status = Prefill(request, *shard, events);
    if (!status.ok() && shard->cancelled.load()) status = absl::CancelledError("request cancelled");
  }
  Release(request);
  return status;
}

absl::Status ShardRunner::Prefill(const ShardRequest& r, ActiveShard& shard, ShardEvents& events) {
  const ModelConfig& config = engine_.config();
  const int shards = static_cast<int>(r.shards.size());
  const bool last = r.rank == shards - 1;

  ShardContext ctx;
  std::unique_ptr<PeerTransport> peers;
  const bool resumed = r.resume_from > 0;  // no exchanges: the last shard queries the others' K/V
  if (shards > 1 && !resumed) {
    ASSIGN_OR_RETURN(peers, transports_.ForPrefill(PeersOf(r, shard)));
    ctx.peers = peers.get();
    ctx.pieces = PlanPieces(r);
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
  int64_t cached = 0;
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    const auto start = std::chrono::steady_clock::now();
    if (resumed) {
      ASSIGN_OR_RETURN(logits, PrefillResumed(r, shard, rows, ctx, cached));
    } else if (prefix_cache_.enabled() && shards == 1 && !r.bypass_prefix_cache) {
      ASSIGN_OR_RETURN(logits, PrefillReusing(r, *shard.state, rows, ctx, cached));
    } else {
      ASSIGN_OR_RETURN(logits, engine_.Forward(*shard.state, r.token_ids, rows, ctx));
      if (shards > 1) KeepSegment(r, *shard.state);
    }
    if (options_.metrics != nullptr) options_.metrics->prefill_step_seconds.Observe(SecondsSince(start));
    if (!last) shard.state->DropMambaStates();  // only the last shard decodes: the others keep K/V alone
    shard.actual_bytes.store(shard.state->MemoryBytes());
  }
  peers.reset();  // the prefill's exchanges are over
  PublishMemoryMetrics();
  if (r.return_logits) RETURN_IF_ERROR(events.PromptLogits(logits, config.vocab_size));
  RETURN_IF_ERROR(events.Prefilled(shard.actual_bytes.load(), cached));

  if (!last) {  // hold the K/V for split-KV attention until the caller ends the shard
    while (!shard.cancelled.load()) std::this_thread::sleep_for(kCancelPoll);
    return absl::OkStatus();
  }
  std::vector<float> last_row(logits.end() - config.vocab_size, logits.end());
  return Decode(r, shard, std::move(last_row), events);
}

// A block that cannot be kept (no memory left for it) is skipped: the cache
// never fails a request.
absl::StatusOr<std::vector<float>> ShardRunner::PrefillReusing(const ShardRequest& r, ShardState& state,
                                                               LogitsRows rows, const ShardContext& ctx,
                                                               int64_t& cached) {
  const int64_t prompt = static_cast<int64_t>(r.token_ids.size());
  const int64_t block = prefix_cache_.block_tokens();
  {
    // At most prompt - 1: the last token runs, for its logits.
    const std::vector<PrefixCache::BlockRef> chain = prefix_cache_.Lookup(r.cache_salt, r.token_ids, prompt - 1);
    RETURN_IF_ERROR(prefix_cache_.Restore(chain, state));
  }  // the blocks are released once copied
  cached = state.num_tokens();
  std::vector<int64_t> cuts;  // block boundaries inside what runs now
  for (int64_t b = (cached / block + 1) * block; b < prompt; b += block) cuts.push_back(b);
  auto keep = [&](int64_t) -> absl::Status {
    (void)prefix_cache_.Insert(r.cache_salt, r.token_ids, state, CacheRoom());
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(std::vector<float> logits,
                   engine_.ForwardWithCuts(state, absl::MakeConstSpan(r.token_ids).subspan(cached), rows, ctx, cuts,
                                           keep));
  if (prompt % block == 0) RETURN_IF_ERROR(keep(prompt));  // the state at the prompt's end is a boundary's too
  return logits;
}

// What a shard of a multi-shard prefill leaves, kept whole when the plan sent
// the prompt before it (and the cache may keep it): best effort, as blocks.
void ShardRunner::KeepSegment(const ShardRequest& r, const ShardState& state) {
  const int64_t begin = r.shards[r.rank].begin;
  if (!prefix_cache_.enabled() || r.bypass_prefix_cache || r.shards[r.rank].has_late() || r.prefill_rounds > 1 ||
      static_cast<int64_t>(r.prefix_token_ids.size()) != begin) {
    return;
  }
  std::vector<int32_t> prefix = r.prefix_token_ids;  // (end): the prompt up to this shard's end
  prefix.insert(prefix.end(), r.token_ids.begin(), r.token_ids.end());
  (void)prefix_cache_.InsertSegment(r.cache_salt, prefix, state, CacheRoom());
}

// A shard of a resumed plan: its kept segment, then (the last shard) the
// rest of its span with split-KV attention over the others. The others may
// be a moment behind (they take their segments concurrently): the first
// query waits for them, within the peer timeout.
absl::StatusOr<std::vector<float>> ShardRunner::PrefillResumed(const ShardRequest& r, ActiveShard& shard,
                                                               LogitsRows rows, ShardContext& ctx, int64_t& cached) {
  const ShardSpan& mine = r.shards[r.rank];
  const bool last = r.rank + 1 == static_cast<int>(r.shards.size());
  const int64_t end = last ? r.resume_from : mine.end;  // of what comes from the cache
  std::vector<int32_t> prefix = r.prefix_token_ids;    // (end)
  prefix.insert(prefix.end(), r.token_ids.begin(), r.token_ids.begin() + (end - mine.begin));
  PrefixCache::BlockRef segment = prefix_cache_.FindSegment(r.cache_salt, prefix, mine.begin);
  if (segment == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("worker ", options_.address, " no longer holds tokens [",
                                                      mine.begin, ", ", end, ") of request ", r.request_id,
                                                      "'s prefix"));
  }
  RETURN_IF_ERROR(prefix_cache_.RestoreSegment(segment, end, /*copy_mamba=*/last, *shard.state));
  segment.reset();
  cached = end - mine.begin;
  if (!last) return std::vector<float>();
  if (r.shards.size() == 1) {  // the whole prefix was this worker's shard: no one else to ask
    return engine_.Forward(*shard.state, absl::MakeConstSpan(r.token_ids).subspan(cached), rows, ctx);
  }
  std::unique_ptr<PeerTransport> peers;
  ASSIGN_OR_RETURN(peers, transports_.ForDecode(PeersOf(r, shard)));
  ctx.peers = peers.get();
  ctx.remote_kv = true;
  RETURN_IF_ERROR(WaitForPeersKv(r, *peers, shard));
  // Pieces of at most kMaxAttendQueryRows: each piece's queries travel to the others whole.
  std::vector<int64_t> cuts;
  for (int64_t c = r.resume_from + kMaxAttendQueryRows; c < mine.end; c += kMaxAttendQueryRows) cuts.push_back(c);
  absl::StatusOr<std::vector<float>> logits =
      engine_.ForwardWithCuts(*shard.state, absl::MakeConstSpan(r.token_ids).subspan(cached), rows, ctx, cuts,
                              [](int64_t) { return absl::OkStatus(); });
  ctx.peers = nullptr;  // `peers` goes now
  return logits;
}

// One query of one row at the resume point, repeated while a peer does not
// know the request yet (its AttendKv answers kNoKvHere, which the transport
// passes on in its message), until the peer timeout.
absl::Status ShardRunner::WaitForPeersKv(const ShardRequest& r, PeerTransport& peers, const ActiveShard& shard) {
  const AttentionConfig& a = engine_.config().attention;
  if (engine_.config().CountBlocks(BlockKind::kAttention) == 0) return absl::OkStatus();  // no K/V to ask for
  const std::vector<float> q(a.num_heads * a.head_dim, 0.0f);  // (1, Hq·D)
  const auto deadline = std::chrono::steady_clock::now() + PeersOf(r, shard).timeout;
  while (true) {
    absl::StatusOr<std::vector<AttentionPartial>> parts = peers.QueryKv(0, q, 1, r.resume_from);
    if (parts.ok()) return absl::OkStatus();
    if (!absl::StrContains(parts.status().message(), kNoKvHere) || shard.cancelled.load() ||
        std::chrono::steady_clock::now() >= deadline) {
      return parts.status();
    }
    std::this_thread::sleep_for(kCancelPoll);
  }
}

// The first token comes from the prefill's logits, here; the rest from the
// decode scheduler's steps. The member leaves (and no step holds the state)
// before the peers and the state go.
absl::Status ShardRunner::Decode(const ShardRequest& r, ActiveShard& shard, std::vector<float> logits,
                                 ShardEvents& events) {
  ShardContext ctx;
  std::unique_ptr<PeerTransport> peers;
  if (r.shards.size() > 1) {
    ASSIGN_OR_RETURN(peers, transports_.ForDecode(PeersOf(r, shard)));
    ctx.peers = peers.get();
    ctx.remote_kv = true;
  }
  if (shard.cancelled.load()) return absl::CancelledError("request cancelled");
  auto sampler = std::make_unique<Sampler>(r.sampling);
  const SampledToken first = sampler->SampleDetailed(logits);
  DecodeStopRules rules = StopRulesOf(r);
  const std::optional<FinishReason> finish = rules.Check(first.token, 1);
  std::unique_ptr<DecodeScheduler::Member> member;
  if (!finish.has_value()) {  // join first: its first step overlaps the delivery of this token
    DecodeJoin join;
    join.state = shard.state.get();
    join.state_mu = &shard.mu;
    join.ctx = &ctx;
    join.memory_bytes = &shard.actual_bytes;
    join.cancelled = &shard.cancelled;
    join.sampler = std::move(sampler);
    join.rules = std::move(rules);
    join.return_logits = r.return_logits;
    join.next_token = first.token;
    join.generated = 1;
    member = decoder_.Join(std::move(join));
  }
  RETURN_IF_ERROR(
      events.TokenWithLogprobs(first, r.return_logits ? absl::Span<const float>(logits) : absl::Span<const float>()));
  if (finish.has_value()) return events.Finished(*finish, 1);
  while (true) {
    ASSIGN_OR_RETURN(const DecodeEvent event, member->Next());
    switch (event.kind) {
      case DecodeEvent::Kind::kToken:
        RETURN_IF_ERROR(events.TokenWithLogprobs(event.sampled, event.logits));
        break;
      case DecodeEvent::Kind::kFinished:
        return events.Finished(event.reason, event.generated);
    }
  }
}

absl::StatusOr<AttentionPartial> ShardRunner::AttendKv(const std::string& request_id, const std::string& secret,
                                                       int64_t attention_slot, absl::Span<const float> q,
                                                       int64_t q_len, int64_t q_position0) {
  std::shared_ptr<ActiveShard> shard = Find(request_id);
  if (shard == nullptr || !SameSecret(shard->secret, secret)) {
    return absl::NotFoundError(absl::StrCat("request ", request_id, " ", kNoKvHere));
  }
  RETURN_IF_ERROR(ValidateAttendKv(q_len, q_position0, LimitsOf(options_)));
  std::lock_guard<std::mutex> lock(shard->mu);
  return engine_.AttendStoredKv(*shard->state, attention_slot, q, q_len, q_position0);
}

}  // namespace tessera
