// Metric families registered once per worker process.
#include "worker/worker_metrics.h"

#include <vector>

#include "rpc/metrics_endpoint.h"

namespace tessera {
namespace {

prometheus::Histogram& Seconds(prometheus::Registry& r, const char* name, const char* help,
                               const prometheus::Labels& labels = {}) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add(labels, LatencyBucketsSeconds());
}

// 1, 2, 4, ... 256 requests.
std::vector<double> BatchSizeBuckets() {
  std::vector<double> buckets;
  for (double size = 1; size <= 256; size *= 2) buckets.push_back(size);
  return buckets;
}

}  // namespace

WorkerMetrics::WorkerMetrics(prometheus::Registry& r)
    : memory_used_bytes(prometheus::BuildGauge()
                            .Name("tessera_worker_memory_used_bytes")
                            .Help("K/V and state memory held or reserved by running requests")
                            .Register(r)
                            .Add({})),
      memory_capacity_bytes(prometheus::BuildGauge()
                                .Name("tessera_worker_memory_capacity_bytes")
                                .Help("K/V and state memory budget of this worker")
                                .Register(r)
                                .Add({})),
      active_requests(prometheus::BuildGauge()
                          .Name("tessera_worker_active_requests")
                          .Help("Request shards running on this worker")
                          .Register(r)
                          .Add({})),
      prefill_step_seconds(Seconds(r, "tessera_worker_prefill_step_seconds",
                                   "Time of one prefill forward pass over this worker's shard")),
      decode_step_seconds(Seconds(r, "tessera_worker_decode_step_seconds",
                                  "Time of one batched decode step (every request's next token in one forward "
                                  "pass), split-KV attention included")),
      decode_batch_size(prometheus::BuildHistogram()
                            .Name("tessera_worker_decode_batch_size")
                            .Help("Requests decoded together in one step")
                            .Register(r)
                            .Add({}, BatchSizeBuckets())),
      decode_waiting_requests(prometheus::BuildGauge()
                                  .Name("tessera_worker_decode_waiting_requests")
                                  .Help("Prefilled requests ready to decode that the last step left out "
                                        "(more than --max-decode-batch)")
                                  .Register(r)
                                  .Add({})),
      decode_queue_seconds(Seconds(r, "tessera_worker_decode_queue_seconds",
                                   "Time from a request's end of prefill to its first batched decode step")),
      prefix_cache_bytes(prometheus::BuildGauge()
                             .Name("tessera_worker_prefix_cache_bytes")
                             .Help("K/V and state memory the prefix cache keeps for reuse (evictable; not in "
                                   "tessera_worker_memory_used_bytes)")
                             .Register(r)
                             .Add({})),
      prefix_cache_blocks(prometheus::BuildGauge()
                              .Name("tessera_worker_prefix_cache_blocks")
                              .Help("Prompt blocks (--prefix-block-tokens) whose state the prefix cache keeps")
                              .Register(r)
                              .Add({})),
      prefix_cache_hit_tokens(prometheus::BuildCounter()
                                  .Name("tessera_worker_prefix_cache_hit_tokens_total")
                                  .Help("Prompt tokens not prefilled because their state was in the prefix cache")
                                  .Register(r)
                                  .Add({})),
      prefix_cache_evictions(prometheus::BuildCounter()
                                 .Name("tessera_worker_prefix_cache_evictions_total")
                                 .Help("Prefix-cache blocks freed, for running requests' memory or by "
                                       "DropPrefixCache")
                                 .Register(r)
                                 .Add({})) {}

}  // namespace tessera
