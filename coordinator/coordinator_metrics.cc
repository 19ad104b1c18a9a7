// Metric families registered once per coordinator process; every
// finish_reason series exists from the start (at 0), so rates work from the
// first scrape.
#include "coordinator/coordinator_metrics.h"

#include "rpc/metrics_endpoint.h"

namespace tessera {
namespace {

prometheus::Histogram& Seconds(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, LatencyBucketsSeconds());
}

prometheus::Counter& Count(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}

prometheus::Gauge& Level(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& r)
    : requests_family_(prometheus::BuildCounter()
                           .Name("tessera_requests_total")
                           .Help("Generate requests that ended, by how they ended")
                           .Register(r)),
      time_to_first_token_seconds(Seconds(r, "tessera_time_to_first_token_seconds",
                                          "From a request's arrival to its first generated token")),
      inter_token_latency_seconds(
          Seconds(r, "tessera_inter_token_latency_seconds", "Between consecutive generated tokens of a request")),
      request_duration_seconds(Seconds(r, "tessera_request_duration_seconds",
                                       "From a request's arrival to its end, for every admitted request")),
      request_queue_time_seconds(Seconds(r, "tessera_request_queue_time_seconds",
                                         "From a request's arrival to its admission (shards placed, memory reserved)")),
      prompt_tokens(Count(r, "tessera_prompt_tokens_total", "Prompt tokens prefilled")),
      generation_tokens(Count(r, "tessera_generation_tokens_total", "Tokens generated and sent to clients")),
      requests_length(requests_family_.Add({{"finish_reason", "length"}})),
      requests_stop_token(requests_family_.Add({{"finish_reason", "stop_token"}})),
      requests_eos(requests_family_.Add({{"finish_reason", "eos"}})),
      requests_stop_string(requests_family_.Add({{"finish_reason", "stop_string"}})),
      requests_aborted(requests_family_.Add({{"finish_reason", "aborted"}})),
      requests_error(requests_family_.Add({{"finish_reason", "error"}})),
      requests_cancelled(requests_family_.Add({{"finish_reason", "cancelled"}})),
      requests_rejected(requests_family_.Add({{"finish_reason", "rejected"}})),
      requests_running(Level(r, "tessera_requests_running", "Requests admitted and not yet ended")),
      requests_waiting(Level(r, "tessera_requests_waiting", "Requests arrived and not yet admitted or rejected")),
      workers_ready(Level(r, "tessera_workers_ready", "Workers that pass their health checks")),
      context_capacity_tokens(Level(r, "tessera_context_capacity_tokens",
                                    "Longest prompt + generation the ready workers hold when empty")),
      context_available_tokens(Level(r, "tessera_context_available_tokens",
                                     "Longest prompt + generation one new request could get now")),
      nccl_groups_formed(Count(r, "tessera_nccl_groups_formed_total",
                               "NCCL worker groups formed (each with a fresh unique id from its rank-0 worker)")) {}

}  // namespace tessera
