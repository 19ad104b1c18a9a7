// prometheus-cpp exposer construction with errors as statuses, not throws.
#include "rpc/metrics_endpoint.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "prometheus/gauge.h"

namespace tessera {

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(const std::string& host, int port,
                                                                        std::shared_ptr<prometheus::Registry> registry) {
  auto endpoint = std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint());
  try {
    endpoint->exposer_ = std::make_unique<prometheus::Exposer>(absl::StrCat(host, ":", port));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", host, ":", port, ": ", e.what()));
  }
  endpoint->exposer_->RegisterCollectable(registry);
  const std::vector<int> ports = endpoint->exposer_->GetListeningPorts();
  endpoint->address_ = absl::StrCat(host, ":", ports.empty() ? port : ports.front());
  return endpoint;
}

void AddBuildInfo(prometheus::Registry& registry, const std::string& role, const std::string& backend) {
  prometheus::BuildGauge()
      .Name("tessera_build_info")
      .Help("Tessera build: version, backend and process role (always 1)")
      .Register(registry)
      .Add({{"version", kTesseraVersion}, {"backend", backend}, {"role", role}})
      .Set(1);
}

std::vector<double> LatencyBucketsSeconds() {
  std::vector<double> buckets;
  for (double b = 0.001; b < 700; b *= 2) buckets.push_back(b);  // 1 ms … 524 s
  return buckets;
}

std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

}  // namespace tessera
