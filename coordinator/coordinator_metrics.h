// The coordinator's Prometheus metrics: the client's view of each request
// (time to first token, time between tokens, end-to-end and queue time,
// tokens in and out, how requests ended) and the cluster's state (requests
// running and waiting, ready workers, context capacity and what is free,
// NCCL groups formed).
// Per-worker memory, step times and transport live on the workers
// (services/worker_metrics.h). Base units; counters end in _total.
#pragma once

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tessera {

struct CoordinatorMetrics {
  explicit CoordinatorMetrics(prometheus::Registry& registry);

 private:
  prometheus::Family<prometheus::Counter>& requests_family_;

 public:
  prometheus::Histogram& time_to_first_token_seconds;  // arrival to the first token relayed
  prometheus::Histogram& inter_token_latency_seconds;  // between tokens relayed (a delta's gap shared by its tokens)
  prometheus::Histogram& request_duration_seconds;     // arrival to end, for every admitted request
  prometheus::Histogram& request_queue_time_seconds;   // arrival to admission (shards placed, memory reserved)
  prometheus::Counter& prompt_tokens;                  // counted when a request's prefill completes
  prometheus::Counter& generation_tokens;              // counted as each token is relayed
  // tessera_requests_total by finish_reason: how each request ended.
  prometheus::Counter& requests_length;
  prometheus::Counter& requests_stop_token;
  prometheus::Counter& requests_eos;
  prometheus::Counter& requests_stop_string;
  prometheus::Counter& requests_aborted;    // ended by Abort (running or waiting)
  prometheus::Counter& requests_error;      // failed after admission (a worker lost, ...)
  prometheus::Counter& requests_cancelled;  // the client cancelled or its deadline passed
  prometheus::Counter& requests_rejected;   // never admitted (invalid, no room, no worker, no tokenizer)
  prometheus::Gauge& requests_running;
  prometheus::Gauge& requests_waiting;
  prometheus::Gauge& workers_ready;
  prometheus::Gauge& context_capacity_tokens;
  prometheus::Gauge& context_available_tokens;
  prometheus::Counter& nccl_groups_formed;  // NCCL worker groups formed (a unique id handed out)
};

}  // namespace tessera
