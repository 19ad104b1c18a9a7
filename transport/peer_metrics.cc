// Families registered once per worker process, on the worker's registry.
#include "transport/peer_metrics.h"

#include "rpc/metrics_endpoint.h"

namespace tessera {

PeerMetrics::PeerMetrics(prometheus::Registry& r)
    : bytes_family_(prometheus::BuildCounter()
                        .Name("tessera_peer_transport_bytes_total")
                        .Help("Bytes this worker sent to peers, by operation")
                        .Register(r)),
      seconds_family_(prometheus::BuildHistogram()
                          .Name("tessera_peer_transport_seconds")
                          .Help("Time of one peer-transport operation, by operation")
                          .Register(r)),
      send_bytes(bytes_family_.Add({{"op", "send"}})),
      send_seconds(seconds_family_.Add({{"op", "send"}}, LatencyBucketsSeconds())),
      nccl_bytes(bytes_family_.Add({{"op", "nccl"}})),
      attend_kv_bytes(bytes_family_.Add({{"op", "attend_kv"}})),
      attend_kv_seconds(seconds_family_.Add({{"op", "attend_kv"}}, LatencyBucketsSeconds())) {}

}  // namespace tessera
