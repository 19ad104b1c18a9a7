// Metric families registered once per worker process.
#include "worker/worker_metrics.h"

#include "rpc/metrics_endpoint.h"

namespace tessera {
namespace {

prometheus::Histogram& Seconds(prometheus::Registry& r, const char* name, const char* help,
                               const prometheus::Labels& labels = {}) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add(labels, LatencyBucketsSeconds());
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
                                  "Time of one decode forward pass, split-KV attention included")) {}

}  // namespace tessera
