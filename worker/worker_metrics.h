// The worker's Prometheus metrics: K/V + state memory, running shards,
// forward-pass step times and the decode batches (decode_scheduler.h) (the
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
};

}  // namespace tessera
