// The operations metrics through real processes: a coordinator and 2 workers
// (bamba-tiny) serving /metrics on ports they pick, found through
// GetServerInfo, scraped over plain HTTP before, during and after real
// requests. The numbers must move as the requests did: exact token counts,
// one latency observation per request (one per token after the first for the
// inter-token histogram), the finish reason, gauges back to zero, and on the
// workers memory, steps and peer-transport bytes.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "tests/e2e/cluster_fixture.h"
#include "tests/e2e/metrics_http.h"

namespace tessera {
namespace {

using e2e::HttpGetMetrics;

// "name{labels}" exactly as exposed → value.
using Samples = std::map<std::string, double>;

// The text format, minimally: skip comments, split "name{labels} value" at the last space.
Samples Scrape(const std::string& address) {
  Samples samples;
  std::istringstream lines(HttpGetMetrics(address));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space == std::string::npos || !absl::SimpleAtod(line.substr(space + 1), &value)) continue;
    samples[line.substr(0, space)] = value;
  }
  return samples;
}

// The sample `key`, or NaN when absent (so every comparison with it fails).
double Get(const Samples& samples, const std::string& key) {
  auto it = samples.find(key);
  return it == samples.end() ? std::nan("") : it->second;
}

bool HasSampleStartingWith(const Samples& samples, const std::string& prefix, const std::string& containing) {
  for (const auto& [key, value] : samples) {
    if (absl::StartsWith(key, prefix) && absl::StrContains(key, containing) && value == 1) return true;
  }
  return false;
}

// The largest finite `le` bound of a histogram's buckets.
double LargestFiniteBucket(const Samples& samples, const std::string& histogram) {
  const std::string prefix = histogram + "_bucket{le=\"";
  double largest = 0;
  for (const auto& [key, value] : samples) {
    double bound = 0;
    if (!absl::StartsWith(key, prefix)) continue;
    const std::string text = key.substr(prefix.size(), key.size() - prefix.size() - 2);  // less '"}'
    if (absl::SimpleAtod(text, &bound) && std::isfinite(bound)) largest = std::max(largest, bound);
  }
  return largest;
}

double Sum(const std::vector<Samples>& all, const std::string& key) {
  double sum = 0;
  for (const Samples& samples : all) sum += Get(samples, key);
  return sum;
}

v1::ServerInfo ServerInfo(v1::Tessera::Stub& stub) {
  grpc::ClientContext context;
  v1::ServerInfo info;
  EXPECT_TRUE(stub.GetServerInfo(&context, v1::GetServerInfoRequest(), &info).ok());
  return info;
}

// Polls until `condition` holds (metrics of finished work may trail the answer by a moment).
bool Eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

constexpr char kRequestsLength[] = "tessera_requests_total{finish_reason=\"length\"}";
constexpr char kRequestsCancelled[] = "tessera_requests_total{finish_reason=\"cancelled\"}";

TEST(MetricsTest, CoordinatorAndWorkerMetricsFollowRealRequests) {
  const std::string fixture = "bamba-tiny";
  std::unique_ptr<LocalCluster> cluster =
      StartCluster(fixture, 2, {"--min-shard-tokens", "1", "--max-new-tokens-limit", "1000000", "--metrics-port", "0"},
                   {"--metrics-port", "0", "--memory-budget-mb", "32",  // capacity below max_position_embeddings
                    "--max-new-tokens-limit", "1000000"});                // workers re-check the coordinator's limit
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  const v1::ServerInfo info = ServerInfo(*stub);
  const std::string coordinator = info.metrics_address();
  ASSERT_FALSE(coordinator.empty());
  ASSERT_EQ(info.workers_size(), 2);
  std::vector<std::string> workers;
  for (const v1::WorkerInfo& worker : info.workers()) {
    ASSERT_FALSE(worker.metrics_address().empty()) << worker.address();
    workers.push_back(worker.metrics_address());
  }
  const auto scrape_workers = [&] {
    std::vector<Samples> all;
    for (const std::string& address : workers) all.push_back(Scrape(address));
    return all;
  };

  // Before: the series exist (every finish_reason at its value), the cluster is described.
  const Samples before = Scrape(coordinator);
  ASSERT_FALSE(before.empty()) << "nothing scraped from " << coordinator;
  EXPECT_TRUE(HasSampleStartingWith(before, "tessera_build_info{", "role=\"coordinator\""));
  EXPECT_EQ(Get(before, "tessera_workers_ready"), 2);
  EXPECT_EQ(Get(before, "tessera_requests_running"), 0);
  EXPECT_EQ(Get(before, "tessera_requests_waiting"), 0);
  EXPECT_GT(Get(before, "tessera_context_capacity_tokens"), 0);
  EXPECT_EQ(Get(before, "tessera_context_available_tokens"), Get(before, "tessera_context_capacity_tokens"));
  EXPECT_FALSE(std::isnan(Get(before, "tessera_requests_total{finish_reason=\"rejected\"}")));
  EXPECT_GT(LargestFiniteBucket(before, "tessera_time_to_first_token_seconds"), 100) << "buckets reach past 100 s";
  const std::vector<Samples> workers_before = scrape_workers();
  for (const Samples& w : workers_before) {
    EXPECT_TRUE(HasSampleStartingWith(w, "tessera_build_info{", "role=\"worker\""));
    EXPECT_GT(Get(w, "tessera_worker_memory_capacity_bytes"), 0);
    EXPECT_EQ(Get(w, "tessera_worker_memory_used_bytes"), 0);
  }

  // A real request over both workers.
  const std::vector<int32_t> prompt = ReferencePrompt(fixture, 77);
  constexpr int kNewTokens = 8;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::GenerateResponse response;
    ASSERT_TRUE(stub->Generate(&context, GreedyRequest(prompt, kNewTokens), &response).ok());
    ASSERT_EQ(response.shards(), 2);
    ASSERT_EQ(response.token_ids_size(), kNewTokens);
  }
  const Samples after = Scrape(coordinator);
  const auto moved = [&](const Samples& later, const std::string& key) { return Get(later, key) - Get(before, key); };
  EXPECT_EQ(moved(after, "tessera_prompt_tokens_total"), 77);
  EXPECT_EQ(moved(after, "tessera_generation_tokens_total"), kNewTokens);
  EXPECT_EQ(moved(after, kRequestsLength), 1);
  EXPECT_EQ(moved(after, "tessera_time_to_first_token_seconds_count"), 1);
  EXPECT_EQ(moved(after, "tessera_request_duration_seconds_count"), 1);
  EXPECT_EQ(moved(after, "tessera_request_queue_time_seconds_count"), 1);
  EXPECT_EQ(moved(after, "tessera_inter_token_latency_seconds_count"), kNewTokens - 1);
  EXPECT_GT(moved(after, "tessera_request_duration_seconds_sum"), 0);
  EXPECT_EQ(Get(after, "tessera_requests_running"), 0);

  // During a long stream: one request runs, both workers hold its memory.
  grpc::ClientContext stream_context;
  stream_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub->GenerateStream(&stream_context, GreedyRequest(prompt, 50000));
  v1::GenerateStreamResponse event;
  int tokens = 0;
  while (tokens < 5 && reader->Read(&event)) tokens += event.has_tokens() ? event.tokens().token_ids_size() : 0;
  ASSERT_GE(tokens, 5);
  const Samples during = Scrape(coordinator);
  EXPECT_EQ(Get(during, "tessera_requests_running"), 1);
  EXPECT_EQ(Get(during, "tessera_requests_waiting"), 0);
  EXPECT_LT(Get(during, "tessera_context_available_tokens"), Get(during, "tessera_context_capacity_tokens"));
  EXPECT_GE(moved(during, "tessera_generation_tokens_total"), kNewTokens + 5);
  for (const Samples& w : scrape_workers()) {
    EXPECT_GT(Get(w, "tessera_worker_memory_used_bytes"), 0);
    EXPECT_GT(Get(w, "tessera_worker_active_requests"), 0);
  }
  stream_context.TryCancel();
  while (reader->Read(&event)) {
  }
  reader->Finish();

  // After: the cancelled stream is counted, everything is released.
  Samples end;
  EXPECT_TRUE(Eventually([&] {
    end = Scrape(coordinator);
    return Get(end, "tessera_requests_running") == 0 && moved(end, kRequestsCancelled) == 1;
  })) << "running " << Get(end, "tessera_requests_running") << ", cancelled +" << moved(end, kRequestsCancelled);
  EXPECT_EQ(moved(end, kRequestsLength), 1);
  EXPECT_EQ(moved(end, "tessera_prompt_tokens_total"), 2 * 77);
  EXPECT_EQ(Get(end, "tessera_workers_ready"), 2);
  std::vector<Samples> workers_end;
  EXPECT_TRUE(Eventually([&] {
    workers_end = scrape_workers();
    return Sum(workers_end, "tessera_worker_memory_used_bytes") == 0 &&
           Sum(workers_end, "tessera_worker_active_requests") == 0;
  }));
  EXPECT_TRUE(Eventually([&] {
    end = Scrape(coordinator);
    return Get(end, "tessera_context_available_tokens") == Get(end, "tessera_context_capacity_tokens");
  }));
  for (const Samples& w : workers_end) {
    EXPECT_GT(Get(w, "tessera_worker_memory_capacity_bytes"), 0);
    EXPECT_GT(Get(w, "tessera_worker_prefill_step_seconds_count"), 0);
  }
  EXPECT_GT(Sum(workers_end, "tessera_worker_decode_step_seconds_count"), 0);
  // Two shards exchange conv tails, SSD summaries and K/V blocks; decode reads remote K/V.
  EXPECT_GT(Sum(workers_end, "tessera_peer_transport_bytes_total{op=\"send\"}"), 0);
  EXPECT_GT(Sum(workers_end, "tessera_peer_transport_bytes_total{op=\"attend_kv\"}"), 0);
}

}  // namespace
}  // namespace tessera
