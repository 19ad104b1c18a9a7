// The peer transports' Prometheus metrics: bytes a worker sends to its peers
// and the time of each operation, by operation (send: gRPC blocks; nccl: NCCL
// collectives; attend_kv: split-KV queries and their answers).
#pragma once

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tessera {

struct PeerMetrics {
  explicit PeerMetrics(prometheus::Registry& registry);

 private:
  prometheus::Family<prometheus::Counter>& bytes_family_;
  prometheus::Family<prometheus::Histogram>& seconds_family_;

 public:
  prometheus::Counter& send_bytes;  // Deliver: conv tails, SSD summaries, K/V blocks
  prometheus::Histogram& send_seconds;
  prometheus::Counter& nccl_bytes;  // NCCL: conv tails, SSD summaries, K/V blocks between GPUs
  prometheus::Counter& attend_kv_bytes;  // AttendKv: queries out, partials back
  prometheus::Histogram& attend_kv_seconds;
};

}  // namespace tessera
