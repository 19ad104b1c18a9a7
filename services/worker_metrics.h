// The worker's Prometheus metrics: K/V + state memory, running shards,
// forward-pass step times, and peer-transport bytes and time per operation.
#pragma once

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tessera {

struct WorkerMetrics {
  explicit WorkerMetrics(prometheus::Registry& registry);

 private:
  prometheus::Family<prometheus::Counter>& peer_bytes_family_;
  prometheus::Family<prometheus::Histogram>& peer_seconds_family_;

 public:
  prometheus::Gauge& memory_used_bytes;
  prometheus::Gauge& memory_capacity_bytes;
  prometheus::Gauge& active_requests;
  prometheus::Histogram& prefill_step_seconds;  // one prefill forward pass of a shard
  prometheus::Histogram& decode_step_seconds;   // one decode forward pass (incl. split-KV calls)
  prometheus::Counter& peer_send_bytes;         // Deliver: conv tails, SSD summaries, K/V blocks
  prometheus::Histogram& peer_send_seconds;
  prometheus::Counter& peer_nccl_bytes;         // NCCL: conv tails, SSD summaries, K/V blocks between GPUs
  prometheus::Counter& peer_attend_kv_bytes;    // AttendKv: queries out, partials back
  prometheus::Histogram& peer_attend_kv_seconds;
};

}  // namespace tessera
