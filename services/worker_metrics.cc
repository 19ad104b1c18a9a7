// Metric families registered once per worker process.
#include "services/worker_metrics.h"

#include "rpc/metrics_endpoint.h"

namespace tessera {
namespace {

prometheus::Histogram& Seconds(prometheus::Registry& r, const char* name, const char* help,
                               const prometheus::Labels& labels = {}) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add(labels, LatencyBucketsSeconds());
}

}  // namespace

WorkerMetrics::WorkerMetrics(prometheus::Registry& r)
    : peer_bytes_family_(prometheus::BuildCounter()
                             .Name("tessera_peer_transport_bytes_total")
                             .Help("Bytes this worker sent to peers, by operation")
                             .Register(r)),
      peer_seconds_family_(prometheus::BuildHistogram()
                               .Name("tessera_peer_transport_seconds")
                               .Help("Time of one peer-transport operation, by operation")
                               .Register(r)),
      memory_used_bytes(prometheus::BuildGauge()
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
                                  "Time of one decode forward pass, split-KV attention included")),
      peer_send_bytes(peer_bytes_family_.Add({{"op", "send"}})),
      peer_send_seconds(peer_seconds_family_.Add({{"op", "send"}}, LatencyBucketsSeconds())),
      peer_nccl_bytes(peer_bytes_family_.Add({{"op", "nccl"}})),
      peer_attend_kv_bytes(peer_bytes_family_.Add({{"op", "attend_kv"}})),
      peer_attend_kv_seconds(peer_seconds_family_.Add({{"op", "attend_kv"}}, LatencyBucketsSeconds())) {}

}  // namespace tessera
