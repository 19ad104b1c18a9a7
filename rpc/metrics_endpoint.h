// Every Tessera process serves Prometheus text metrics over HTTP
// (prometheus-cpp's exposer) on its own port, beside its gRPC port. This file
// owns that endpoint, the build_info metric, and the latency buckets shared by
// all histograms (1 ms to 600 s: long documents prefill for minutes).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace tessera {

inline constexpr char kTesseraVersion[] = "0.1.0";

class MetricsEndpoint {
 public:
  // Serves `registry` at http://HOST:PORT/metrics. Port 0 picks a free port.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& host, int port,
                                                                std::shared_ptr<prometheus::Registry> registry);
  // "HOST:PORT" actually bound.
  const std::string& address() const { return address_; }

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string address_;
};

// tessera_build_info{version, backend, role} = 1.
void AddBuildInfo(prometheus::Registry& registry, const std::string& role, const std::string& backend);

// Bucket upper bounds in seconds, roughly ×2 apart from 1 ms past 100 s.
std::vector<double> LatencyBucketsSeconds();

// "0.0.0.0:50051" → "0.0.0.0": the host part of a listen address.
std::string HostOf(const std::string& address);

}  // namespace tessera
