// A worker's request lifecycle, below its gRPC face: admit a shard against
// the memory budget, prefill it with its peers (progress and logits
// reported), then either decode (the last shard) or hold its K/V for split-KV
// attention until the caller ends the shard; answer other workers' split-KV
// queries; release everything however a shard ends.
//
// Decode is batched: after its prefill and first token a last shard joins
// the worker's DecodeScheduler (decode_scheduler.h), whose one thread runs
// the next token of every decoding request in one forward pass; the shard's
// own call thread keeps its stream and delivers each token as it comes.
// Prefill runs on the call threads, concurrently with the decode steps.
//
// Memory: every running shard reserves what the coordinator planned for it
// (or what its tokens need, if more); a shard that would exceed the budget
// waits a moment for memory a cancelled shard is about to free, then is
// refused with RESOURCE_EXHAUSTED. The arithmetic saturates: no number a
// caller sends can wrap the budget check.
//
// Trust: the worker re-checks every number it is sent (ValidateShardRequest)
// against its own limits, caps the peer timeout, and answers split-KV
// queries only with the request's secret (NOT_FOUND otherwise, exactly as
// for an unknown id).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transport/request_transports.h"
#include "worker/decode_scheduler.h"
#include "worker/engine.h"
#include "worker/network_limits.h"
#include "worker/prefix_cache.h"
#include "worker/shard_request.h"
#include "worker/shard_validation.h"
#include "worker/worker_metrics.h"

namespace tessera {

inline constexpr std::chrono::milliseconds kDefaultPeerTimeout{10000};

struct ShardRunnerOptions {
  std::string address;  // this worker's advertised address (messages name it)
  int64_t memory_budget_bytes = int64_t{1} << 30;
  // The longest pass this worker's prefill may run (Engine::PrefillTokenLimit:
  // activation memory, or --max-pass-tokens); 0: no limit. A shard of a
  // multi-shard request runs one pass a round of its plan, so one whose piece
  // of some round is longer is refused; a shard holding its whole request
  // runs in pieces of the engine's prefill_chunk_tokens, so only a piece
  // longer than this is.
  int64_t max_shard_tokens = 0;
  // The context served (ResolveContextLimit): a request whose prompt plus
  // max_new_tokens passes it is refused; 0: no limit.
  int64_t max_context_tokens = 0;
  // The largest max_new_tokens a shard may ask for (the coordinator's
  // --max-new-tokens-limit, which a worker re-checks).
  int32_t max_new_tokens_limit = 4096;
  // The longest a peer may keep a shard waiting, whatever the request says;
  // a request's peer_timeout_ms of 0 means kDefaultPeerTimeout.
  std::chrono::milliseconds max_peer_timeout{60000};
  // The most requests one decode step runs (--max-decode-batch); more wait
  // for a later step, in turn.
  int max_decode_batch = kDefaultMaxDecodeBatch;
  // Prefix reuse (prefix_cache.h): tokens per cached block, 0: none kept.
  // The cache lives in what the running shards leave of the budget.
  int64_t prefix_block_tokens = 0;
  WorkerMetrics* metrics = nullptr;  // optional; must outlive the runner
};

class ShardRunner {
 public:
  // `engine` and `transports` must outlive the runner.
  ShardRunner(Engine& engine, RequestTransports& transports, ShardRunnerOptions options);

  // Runs one shard from admission to release, reporting to `events`.
  // `caller_gone` is polled while the shard runs (every few ms, from another
  // thread); once it returns true the shard is cancelled: peer waits wake at
  // once and the call returns CANCELLED (a shard that only holds K/V returns
  // OK: that is how its caller ends it).
  absl::Status RunShard(const ShardRequest& request, ShardEvents& events, std::function<bool()> caller_gone);

  // Split-KV attention over the K/V that `request_id` holds here; NOT_FOUND
  // when it holds none or `secret` is not the request's (the same message).
  absl::StatusOr<AttentionPartial> AttendKv(const std::string& request_id, const std::string& secret,
                                            int64_t attention_slot, absl::Span<const float> q, int64_t q_len,
                                            int64_t q_position0);

  const Engine& engine() const { return engine_; }
  const ShardRunnerOptions& options() const { return options_; }
  void set_address(std::string address) { options_.address = std::move(address); }
  // Held by running shards and undelivered peer blocks (the prefix cache,
  // which gives way to them, is not counted: prefix_cache().bytes()).
  int64_t memory_used_bytes() const;
  const PrefixCache& prefix_cache() const { return prefix_cache_; }
  // Frees the prefix cache (what no shard is copying from); returns the bytes.
  int64_t DropPrefixCache();
  // Sets the memory and request gauges from the above (also done on every admission and release).
  void PublishMemoryMetrics();
  int active_requests() const;

 private:
  struct ActiveShard {
    std::string secret;
    std::mutex mu;  // guards state against AttendKv during decode appends
    std::unique_ptr<ShardState> state;
    int64_t reserved_bytes = 0;
    std::atomic<int64_t> actual_bytes{0};  // state->MemoryBytes() as of the last step
    std::atomic<bool> cancelled{false};
  };

  absl::StatusOr<std::shared_ptr<ActiveShard>> Admit(const ShardRequest& r);
  absl::Status Prefill(const ShardRequest& r, ActiveShard& shard, ShardEvents& events);
  // A one-shard prefill through the prefix cache: resumes after the longest
  // cached prefix, keeps a block at every block boundary it passes. Sets
  // `cached` to the tokens resumed from.
  absl::StatusOr<std::vector<float>> PrefillReusing(const ShardRequest& r, ShardState& state, LogitsRows rows,
                                                    const ShardContext& ctx, int64_t& cached);
  absl::StatusOr<std::vector<float>> PrefillResumed(const ShardRequest& r, ActiveShard& shard, LogitsRows rows,
                                                    ShardContext& ctx, int64_t& cached);
  absl::Status WaitForPeersKv(const ShardRequest& r, PeerTransport& peers, const ActiveShard& shard);
  void KeepSegment(const ShardRequest& r, const ShardState& state);
  int64_t UsedLocked() const;  // memory_used_bytes without the transports' part; mu_ held
  int64_t CacheRoom() const;   // what the budget leaves the prefix cache now
  absl::Status Decode(const ShardRequest& r, ActiveShard& shard, std::vector<float> logits, ShardEvents& events);
  void Release(const ShardRequest& r);
  std::shared_ptr<ActiveShard> Find(const std::string& request_id) const;
  RequestPeers PeersOf(const ShardRequest& r, const ActiveShard& shard) const;

  Engine& engine_;
  RequestTransports& transports_;
  ShardRunnerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable released_;  // memory was freed: a waiting Admit may fit now
  std::map<std::string, std::shared_ptr<ActiveShard>> shards_;  // by request id
  PrefixCache prefix_cache_;
  DecodeScheduler decoder_;  // last: its members are the running shards' call threads
};

// What bounds a shard's length on a worker with this engine and options
// (network_limits.h derives its message limits from it).
ShardLengthBounds ShardLengthBoundsOf(const Engine& engine, const ShardRunnerOptions& options);

// The limits ValidateShardRequest checks against, from the runner's options.
ShardLimits LimitsOf(const ShardRunnerOptions& options);

}  // namespace tessera
