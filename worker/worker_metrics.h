// The worker's Prometheus metrics: K/V + state memory, running shards and
// forward-pass step times (the peer transports keep their own:
// transport/peer_metrics.h).
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
  prometheus::Histogram& decode_step_seconds;   // one decode forward pass (incl. split-KV calls)
};

}  // namespace tessera
