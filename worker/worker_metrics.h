// The worker's Prometheus metrics: K/V + state memory, running shards,
// forward-pass step times, the decode batches (decode_scheduler.h) and the
// prefix cache (prefix_cache.h) (the
// peer transports keep their own: transport/peer_metrics.h).
#pragma once

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tessera {

struct WorkerMetrics {
  explicit WorkerMetrics(prometheus::Registry& registry);

  prometheus::Gauge& memory_used_bytes;
  prometheus::Gauge& memory_capacity_bytes;
  prometheus::Gauge& active_requests;
  prometheus::Histogram& prefill_step_seconds;  // one prefill forward pass of a shard
  prometheus::Histogram& decode_step_seconds;   // one batched decode step (incl. split-KV calls)
  prometheus::Histogram& decode_batch_size;     // requests in one decode step
  prometheus::Gauge& decode_waiting_requests;   // runnable requests left out of the last step (batch full)
  prometheus::Histogram& decode_queue_seconds;  // from a request's prefill to its first decode step
  // Prefix reuse (prefix_cache.h): its memory is not in memory_used_bytes.
  prometheus::Gauge& prefix_cache_bytes;
  prometheus::Gauge& prefix_cache_blocks;
  prometheus::Counter& prefix_cache_hit_tokens;  // prompt tokens not prefilled: their state was cached
  prometheus::Counter& prefix_cache_evictions;   // blocks freed for memory or by DropPrefixCache
};

}  // namespace tessera
