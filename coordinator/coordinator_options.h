// The coordinator's knobs, one place, with their defaults: the command-line
// flags map onto these fields and tests shorten the timings.
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace tessera {

struct CoordinatorMetrics;

// How the shards of a multi-shard request exchange (`--peer-transport`).
// Single-shard requests exchange nothing and never use NCCL.
enum class PeerTransportMode {
  kAuto,  // NCCL when every shard's worker offers it, else gRPC
  kGrpc,  // always gRPC (Deliver)
  kNccl,  // always NCCL; a request whose workers do not all offer it fails (FAILED_PRECONDITION)
};

// How a prompt split over several workers is dealt (`--shard-layout`).
enum class ShardLayout {
  kAuto,        // zigzag for prompts of at least zigzag_min_tokens that keep no prefix, of a model with attention
  kContiguous,  // always W contiguous runs (each shard's span can be resumed from)
  kZigzag,      // always 2W pieces, shard r holding pieces W-1-r and W+r (balanced attention; no span kept)
};

struct CoordinatorOptions {
  int64_t min_shard_tokens = 1024;                           // prompts shorter than this use one shard
  int32_t max_new_tokens_limit = 4096;                       // the largest max_new_tokens a request may ask for
  int32_t default_max_new_tokens = 1024;  // max_new_tokens 0: up to the served context, at most this
  // Requests that do not fit the cluster now wait, at most this many (in
  // priority order, then arrival); 0: refused at once (RESOURCE_EXHAUSTED).
  int32_t max_queued_requests = 0;
  absl::Duration queue_timeout = absl::Seconds(60);  // a waiting request gives up after this (RESOURCE_EXHAUSTED)
  // Passed to workers in RunShardRequest: how long one waits for a peer's
  // block. It must cover the slowest peer's compute between two exchanges
  // (a CPU worker's attention layer over a long shard takes seconds: the
  // README's 29K-token prompt over 3 CPU workers on a loaded 2-core machine
  // outran 10 s); a lost worker is found sooner, through its failed connection.
  int32_t peer_timeout_ms = 30000;
  absl::Duration health_interval = absl::Milliseconds(500);  // GetStatus on every worker this often
  absl::Duration status_deadline = absl::Seconds(1);         // one GetStatus may take this long
  int failures_before_unready = 2;                  // consecutive failed checks that drop a worker from planning
  absl::Duration forget_after = absl::Seconds(30);  // a worker silent this long is forgotten
  absl::Duration cancel_poll_interval = absl::Milliseconds(50);  // how often a request checks its client
  PeerTransportMode peer_transport = PeerTransportMode::kAuto;
  ShardLayout shard_layout = ShardLayout::kAuto;
  int64_t zigzag_min_tokens = 16384;  // kAuto: shorter prompts stay contiguous
  absl::Duration nccl_unique_id_deadline = absl::Seconds(5);  // one NewNcclUniqueId may take this long
  CoordinatorMetrics* metrics = nullptr;  // optional; must outlive the coordinator
  std::string metrics_address;            // reported in GetServerInfo, empty when none
};

}  // namespace tessera
