// Load: 32 concurrent streams against a coordinator and 3 CPU workers of
// bamba-tiny for TESSERA_LOAD_SECONDS (default 20: the CI variant; the full
// run is 180), prompts of 16 to 200 tokens (one to three shards) and 8 to 48
// new tokens; 5% of the requests are cancelled by their client after a
// random number of tokens. Each worker decodes its running requests in
// batched steps. It asserts what finding 8 broke and what a leak would break:
//  - no error at all (a cancelled request ends CANCELLED, nothing else);
//  - no worker did more than half of the forward work (prefill passes plus
//    tokens decoded, from each worker's /metrics);
//  - every worker's memory gauge is back to 0 once the streams are done;
//  - decode ran in batches: every token after a request's first came from a
//    decode step (the batch-size histogram counts at least those), some step
//    ran more than one request, and each request's wait for its first step
//    was measured;
//  - the RSS of every process (/proc/PID/status VmRSS, sampled each second
//    after a warm-up of a third of the run, at least 5 s) grows less than
//    5% on runs of 2 minutes or more, 12% on CI's short one: the median of
//    the last third of the samples against the median of the first third
//    (medians, so that one request's transient buffers do not count as
//    growth).
// It prints the numbers (requests, tokens, steps per worker, RSS per process).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "tests/e2e/cluster_fixture.h"
#include "tests/e2e/metrics_http.h"

namespace tessera {
namespace {

using e2e::HttpGetMetrics;

// The sum of every sample whose name starts with `prefix` (labels aside).
double SumOf(const std::string& metrics, const std::string& prefix) {
  std::istringstream lines(metrics);
  std::string line;
  double sum = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#' || !absl::StartsWith(line, prefix)) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) sum += value;
  }
  return sum;
}

int64_t RssKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      int64_t kib = 0;
      std::istringstream(line.substr(6)) >> kib;
      return kib;
    }
  }
  return 0;
}

int LoadSeconds() {
  const char* env = std::getenv("TESSERA_LOAD_SECONDS");
  int seconds = 20;
  if (env != nullptr && absl::SimpleAtoi(env, &seconds) && seconds > 0) return seconds;
  return 20;
}

TEST(LoadTest, ThirtyTwoStreamsSpreadOverTheWorkersWithoutErrorsOrGrowth) {
  const std::string fixture = "bamba-tiny";
  const int seconds = LoadSeconds();
  const int kStreams = 32;
  std::unique_ptr<LocalCluster> cluster =
      StartCluster(fixture, 3, {"--min-shard-tokens", "64"}, {"--metrics-port", "0", "--memory-budget-mb", "1024"});
  ASSERT_NE(cluster, nullptr);
  auto stub = ClientFor(*cluster);
  std::vector<std::string> metrics;
  {
    grpc::ClientContext context;
    v1::ServerInfo info;
    ASSERT_TRUE(stub->GetServerInfo(&context, v1::GetServerInfoRequest(), &info).ok());
    for (const v1::WorkerInfo& w : info.workers()) metrics.push_back(w.metrics_address());
  }
  ASSERT_EQ(metrics.size(), 3u);
  std::vector<pid_t> pids = {cluster->coordinator_pid()};
  for (int i = 0; i < 3; ++i) pids.push_back(cluster->worker_pid(i));
  const std::vector<int32_t> reference = ReferencePrompt(fixture, 200);

  std::atomic<bool> stop{false};
  std::atomic<int64_t> requests{0}, tokens{0}, errors{0}, cancelled{0};
  std::mutex mu;
  std::map<std::string, int> error_messages;
  std::vector<std::thread> clients;
  for (int c = 0; c < kStreams; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(1234 + c);
      while (!stop.load()) {
        const int length = std::uniform_int_distribution<int>(16, 200)(rng);
        const int new_tokens = std::uniform_int_distribution<int>(8, 48)(rng);
        // 5%: cancelled by the client once it has this many tokens.
        const bool cancel = std::uniform_int_distribution<int>(0, 99)(rng) < 5;
        const int cancel_after = std::uniform_int_distribution<int>(1, new_tokens - 1)(rng);
        const std::vector<int32_t> prompt(reference.begin(), reference.begin() + length);
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
        auto reader = stub->GenerateStream(&context, GreedyRequest(prompt, new_tokens));
        v1::GenerateStreamResponse event;
        int got = 0;
        bool cancel_sent = false;
        while (reader->Read(&event)) {
          got += event.has_tokens() ? event.tokens().token_ids_size() : 0;
          if (cancel && !cancel_sent && got >= cancel_after) {
            context.TryCancel();
            cancel_sent = true;
          }
        }
        const grpc::Status status = reader->Finish();
        ++requests;
        tokens += got;
        if (cancel_sent && (status.error_code() == grpc::StatusCode::CANCELLED || (status.ok() && got == new_tokens))) {
          ++cancelled;  // the cancel may lose the race with the last token
        } else if (!status.ok() || got != new_tokens) {
          ++errors;
          std::lock_guard<std::mutex> lock(mu);
          ++error_messages[status.ok() ? "short stream" : status.error_message()];
        }
      }
    });
  }

  // RSS samples, every second after the warm-up.
  const int warmup = std::max(5, seconds / 3);
  std::this_thread::sleep_for(std::chrono::seconds(warmup));
  std::vector<std::vector<int64_t>> rss(pids.size());
  for (int t = warmup; t < seconds; ++t) {
    for (size_t p = 0; p < pids.size(); ++p) rss[p].push_back(RssKib(pids[p]));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  stop = true;
  for (std::thread& t : clients) t.join();
  auto median = [](std::vector<int64_t> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  };
  std::vector<int64_t> rss_early, rss_late, rss_peak;
  for (const std::vector<int64_t>& samples : rss) {
    const size_t third = std::max<size_t>(1, samples.size() / 3);
    rss_early.push_back(median(std::vector<int64_t>(samples.begin(), samples.begin() + third)));
    rss_late.push_back(median(std::vector<int64_t>(samples.end() - third, samples.end())));
    rss_peak.push_back(samples.empty() ? 0 : *std::max_element(samples.begin(), samples.end()));
  }

  // Work per worker: prefill passes plus tokens decoded (the decode steps'
  // batch sizes); and each worker's memory, which the last cancelled shards
  // free a moment after their streams close.
  double total_steps = 0;
  std::vector<double> steps, decode_steps, decode_tokens, memory;
  double queued = 0;  // requests whose first decode step was timed
  const auto memory_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (const std::string& address : metrics) {
    std::string body = HttpGetMetrics(address);
    while (SumOf(body, "tessera_worker_memory_used_bytes") != 0 && std::chrono::steady_clock::now() < memory_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      body = HttpGetMetrics(address);
    }
    memory.push_back(SumOf(body, "tessera_worker_memory_used_bytes"));
    decode_steps.push_back(SumOf(body, "tessera_worker_decode_step_seconds_count"));
    decode_tokens.push_back(SumOf(body, "tessera_worker_decode_batch_size_sum"));
    queued += SumOf(body, "tessera_worker_decode_queue_seconds_count");
    steps.push_back(SumOf(body, "tessera_worker_prefill_step_seconds_count") + decode_tokens.back());
    total_steps += steps.back();
  }
  std::printf("load: %d s, %d streams: %lld requests, %lld tokens, %lld cancelled, %lld errors\n", seconds, kStreams,
              static_cast<long long>(requests.load()), static_cast<long long>(tokens.load()),
              static_cast<long long>(cancelled.load()), static_cast<long long>(errors.load()));
  for (size_t w = 0; w < steps.size(); ++w) {
    std::printf("load: worker %zu: %.0f passes + tokens (%.1f%%), %.0f decode steps of %.1f requests on average, "
                "memory %.0f bytes at the end\n",
                w, steps[w], 100.0 * steps[w] / total_steps, decode_steps[w],
                decode_steps[w] > 0 ? decode_tokens[w] / decode_steps[w] : 0.0, memory[w]);
  }
  for (size_t p = 0; p < pids.size(); ++p) {
    std::printf("load: %s RSS median early %lld KiB, late %lld KiB (%+.2f%%), peak %lld KiB, %zu samples\n",
                p == 0 ? "coordinator" : ("worker " + std::to_string(p - 1)).c_str(),
                static_cast<long long>(rss_early[p]), static_cast<long long>(rss_late[p]),
                100.0 * (rss_late[p] - rss_early[p]) / std::max<int64_t>(1, rss_early[p]),
                static_cast<long long>(rss_peak[p]), rss[p].size());
  }
  for (const auto& [message, count] : error_messages) std::printf("load: error x%d: %s\n", count, message.c_str());

  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(requests.load(), kStreams);
  for (size_t w = 0; w < memory.size(); ++w) EXPECT_EQ(memory[w], 0) << "worker " << w;
  double all_decode_steps = 0, all_decode_tokens = 0;
  for (size_t w = 0; w < decode_steps.size(); ++w) {
    all_decode_steps += decode_steps[w];
    all_decode_tokens += decode_tokens[w];
  }
  EXPECT_GE(all_decode_tokens, static_cast<double>(tokens.load() - requests.load()));
  EXPECT_GT(all_decode_tokens, all_decode_steps) << "no decode step ran two requests";
  EXPECT_GT(queued, 0);
  ASSERT_GT(total_steps, 0);
  for (size_t w = 0; w < steps.size(); ++w) EXPECT_LE(steps[w], 0.5 * total_steps) << "worker " << w;
  // Over CI's short run the windows are seconds apart and allocator warm-up
  // (arenas, gRPC buffers) still shows: up to ~5% on a loaded 2-core box.
  // Growth is judged at 5% only on runs of 2 minutes or more
  // (TESSERA_LOAD_SECONDS=180), at 12% on shorter ones.
  const int64_t growth_percent = seconds >= 120 ? 5 : 12;
  for (size_t p = 0; p < pids.size(); ++p) {
    EXPECT_GT(rss_early[p], 0);
    EXPECT_LT(rss_late[p], rss_early[p] * (100 + growth_percent) / 100)
        << (p == 0 ? "coordinator" : "worker " + std::to_string(p - 1)) << " grew more than " << growth_percent << "%";
  }
}

}  // namespace
}  // namespace tessera
