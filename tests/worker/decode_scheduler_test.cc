// The worker's decode scheduler (decode_scheduler.h) and the shard runner
// around it, on every fixture:
//  - requests with seeded sampling (and greedy ones) that join one after the
//    other while the earlier ones decode get exactly the tokens they get alone
//    (each keeps its own Sampler), their logits within fp32 reassociation;
//  - with more requests than max_batch, no step runs more than max_batch and
//    every request still finishes with its own tokens;
//  - through ShardRunner::RunShard: a request cancelled mid-batch ends
//    CANCELLED while the others finish with their own tokens, a client that
//    does not read does not stall the others, and the worker's memory (and
//    its gauge) is back to 0 at the end.
// Backend: TESSERA_TEST_BACKEND (cpu; cuda in the gpu-labelled twin, skipped
// without a device).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/support/hf_tiny.h"
#include "tests/worker/decode_test_fixture.h"
#include "worker/decode_scheduler.h"
#include "worker/engine.h"
#include "worker/sampler.h"
#include "worker/shard_runner.h"
#include "worker/worker_metrics.h"

namespace tessera {
namespace {

constexpr double kBatchTolerance = 1e-5;  // relative L2 of a request's logits rows, fp32
constexpr auto kWaitLimit = std::chrono::seconds(120);

struct StreamSpec {
  int64_t prompt_begin = 0;
  int64_t prompt_tokens = 0;
  int32_t new_tokens = 0;
  SamplingConfig sampling;
};

SamplingConfig Seeded(uint64_t seed) {
  SamplingConfig s;
  s.temperature = 0.9f;
  s.top_k = 40;
  s.top_p = 0.95f;
  s.seed = seed;
  return s;
}

// Prompts of different lengths, greedy and seeded, long enough to overlap.
std::vector<StreamSpec> Streams() {
  return {{0, 37, 40, Seeded(7)}, {40, 5, 44, SamplingConfig{}}, {10, 150, 36, Seeded(11)},
          {100, 64, 48, Seeded(7)}, {3, 19, 41, SamplingConfig{}}};
}

// Tokens and the logits row behind each.
struct Sampled {
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // (tokens, vocab)
};

// The sum of a histogram's samples above `bound` (its buckets are cumulative).
uint64_t SamplesAbove(prometheus::Histogram& histogram, double bound) {
  const prometheus::ClientMetric metric = histogram.Collect();
  for (const prometheus::ClientMetric::Bucket& b : metric.histogram.bucket) {
    if (b.upper_bound >= bound) return metric.histogram.sample_count - b.cumulative_count;
  }
  return 0;
}

class DecodeSchedulerTest : public testing::DecodeTestFixture {
 protected:
  std::vector<int32_t> PromptOf(const StreamSpec& s) const { return PromptPiece(s.prompt_begin, s.prompt_tokens); }

  // The stream on its own: prefill, then one Forward per token, its own Sampler.
  Sampled Alone(const StreamSpec& s) {
    Sampled out;
    absl::StatusOr<std::unique_ptr<ShardState>> state = engine_->NewState(0, s.prompt_tokens + s.new_tokens);
    EXPECT_TRUE(state.ok()) << state.status();
    if (!state.ok()) return out;
    absl::StatusOr<std::vector<float>> logits = engine_->Forward(**state, PromptOf(s), LogitsRows::kLast);
    Sampler sampler(s.sampling);
    while (true) {
      EXPECT_TRUE(logits.ok()) << logits.status();
      if (!logits.ok()) return out;
      out.tokens.push_back(sampler.Sample(*logits));
      out.logits.insert(out.logits.end(), logits->begin(), logits->end());
      if (static_cast<int32_t>(out.tokens.size()) >= s.new_tokens) return out;
      const int32_t next[1] = {out.tokens.back()};
      logits = engine_->Forward(**state, next, LogitsRows::kLast);
    }
  }

  void ExpectAsAlone(const StreamSpec& s, const Sampled& got) {
    const Sampled want = Alone(s);
    EXPECT_EQ(got.tokens, want.tokens);
    EXPECT_TRUE(kernel_test::CloseInRelativeL2(got.logits, want.logits, kBatchTolerance));
  }

};

// One stream through the scheduler, as a shard's call thread drives it.
// `on_token` (if any) sees the count of tokens taken after each.
Sampled DecodeThroughScheduler(Engine& engine, DecodeScheduler& scheduler, const StreamSpec& s,
                               const std::vector<int32_t>& prompt, const std::function<void(int)>& on_token) {
  Sampled out;
  absl::StatusOr<std::unique_ptr<ShardState>> state = engine.NewState(0, s.prompt_tokens + s.new_tokens);
  EXPECT_TRUE(state.ok()) << state.status();
  if (!state.ok()) return out;
  absl::StatusOr<std::vector<float>> logits = engine.Forward(**state, prompt, LogitsRows::kLast);
  EXPECT_TRUE(logits.ok()) << logits.status();
  if (!logits.ok()) return out;
  std::mutex state_mu;
  DecodeJoin join;
  join.state = state->get();
  join.state_mu = &state_mu;
  join.sampler = std::make_unique<Sampler>(s.sampling);
  join.rules.max_new_tokens = s.new_tokens;
  join.return_logits = true;
  join.next_token = join.sampler->Sample(*logits);
  join.generated = 1;
  out.tokens.push_back(join.next_token);
  out.logits = *logits;
  if (on_token) on_token(1);
  if (s.new_tokens == 1) return out;
  std::unique_ptr<DecodeScheduler::Member> member = scheduler.Join(std::move(join));
  while (true) {
    absl::StatusOr<DecodeEvent> event = member->Next();
    EXPECT_TRUE(event.ok()) << event.status();
    if (!event.ok()) return out;
    if (event->kind == DecodeEvent::Kind::kFinished) {
      EXPECT_EQ(event->reason, FinishReason::kLength);
      EXPECT_EQ(event->generated, s.new_tokens);
      return out;
    }
    out.tokens.push_back(event->sampled.token);
    out.logits.insert(out.logits.end(), event->logits.begin(), event->logits.end());
    if (on_token) on_token(static_cast<int>(out.tokens.size()));
  }
}

// Stream i starts once stream i-1 has taken 3 tokens, and stream i-1 takes
// no 4th until stream i has taken 2 (one from its prefill, one from a step):
// every join lands while the stream before is mid-stream.
TEST_P(DecodeSchedulerTest, StreamsJoiningMidStreamGetTheirAloneTokens) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  DecodeSchedulerOptions options;
  options.metrics = &metrics;
  DecodeScheduler scheduler(*engine_, options);
  const std::vector<StreamSpec> streams = Streams();
  std::vector<Sampled> got(streams.size());
  std::vector<std::atomic<int>> taken(streams.size());
  auto wait_for = [](const std::atomic<int>& count, int at_least) {
    const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
    while (count.load() < at_least && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 0; i < streams.size(); ++i) {
    threads.emplace_back([&, i] {
      if (i > 0) wait_for(taken[i - 1], 3);
      got[i] = DecodeThroughScheduler(*engine_, scheduler, streams[i], PromptOf(streams[i]), [&, i](int count) {
        taken[i].store(count);
        if (count == 3 && i + 1 < streams.size()) wait_for(taken[i + 1], 2);
      });
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < streams.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << GetParam() << " stream " << i);
    ExpectAsAlone(streams[i], got[i]);
  }
  EXPECT_GT(SamplesAbove(metrics.decode_batch_size, 1), 0u) << "no step batched two requests";
  EXPECT_EQ(scheduler.members(), 0);
}

TEST_P(DecodeSchedulerTest, NoStepRunsMoreThanMaxBatch) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  DecodeSchedulerOptions options;
  options.max_batch = 2;
  options.metrics = &metrics;
  DecodeScheduler scheduler(*engine_, options);
  const std::vector<StreamSpec> streams = Streams();
  std::vector<Sampled> got(streams.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < streams.size(); ++i) {
    threads.emplace_back(
        [&, i] { got[i] = DecodeThroughScheduler(*engine_, scheduler, streams[i], PromptOf(streams[i]), {}); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < streams.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << GetParam() << " stream " << i);
    ExpectAsAlone(streams[i], got[i]);
  }
  EXPECT_GT(metrics.decode_batch_size.Collect().histogram.sample_count, 0u);
  EXPECT_EQ(SamplesAbove(metrics.decode_batch_size, 2), 0u);
}

// Single-shard requests need no peers: this RequestTransports refuses any.
class NoPeers final : public RequestTransports {
 public:
  absl::StatusOr<std::unique_ptr<PeerTransport>> ForPrefill(const RequestPeers&) override {
    return absl::FailedPreconditionError("no peers in this test");
  }
  absl::StatusOr<std::unique_ptr<PeerTransport>> ForDecode(const RequestPeers&) override {
    return absl::FailedPreconditionError("no peers in this test");
  }
  void BeginRequest(const std::string&, const std::string&) override {}
  void EndRequest(const std::string&, const std::string&) override {}
  int64_t PendingBytes() override { return 0; }
  std::vector<std::string> Offered() const override { return {"none"}; }
};

// Records what RunShard reports; Token may be held (a client that does not read).
class RecordingEvents final : public ShardEvents {
 public:
  absl::Status Progress(int64_t, int64_t, int64_t, int) override { return absl::OkStatus(); }
  absl::Status PromptLogits(absl::Span<const float>, int64_t) override { return absl::OkStatus(); }
  absl::Status Prefilled(int64_t, int64_t) override { return absl::OkStatus(); }
  absl::Status Token(int32_t token, absl::Span<const float>) override {
    std::unique_lock<std::mutex> lock(mu_);
    tokens_.push_back(token);
    changed_.notify_all();
    if (static_cast<int>(tokens_.size()) == hold_at_) {
      changed_.wait_for(lock, kWaitLimit, [&] { return released_; });
    }
    return absl::OkStatus();
  }
  absl::Status Finished(FinishReason reason, int32_t completion_tokens) override {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    reason_ = reason;
    completion_tokens_ = completion_tokens;
    changed_.notify_all();
    return absl::OkStatus();
  }

  // The `n`-th Token call blocks until Release.
  void HoldAt(int n) { hold_at_ = n; }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    changed_.notify_all();
  }
  bool WaitForTokens(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, kWaitLimit, [&] { return tokens_.size() >= n; });
  }
  std::vector<int32_t> tokens() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }
  bool finished() const {
    std::lock_guard<std::mutex> lock(mu_);
    return finished_;
  }
  FinishReason reason() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reason_;
  }
  int32_t completion_tokens() const {
    std::lock_guard<std::mutex> lock(mu_);
    return completion_tokens_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<int32_t> tokens_;
  bool finished_ = false;
  FinishReason reason_ = FinishReason::kLength;
  int32_t completion_tokens_ = 0;
  int hold_at_ = -1;
  bool released_ = false;
};

ShardRequest RequestOf(const std::string& id, const StreamSpec& s, const std::vector<int32_t>& prompt) {
  ShardRequest r;
  r.request_id = id;
  r.secret = "0123456789abcdef0123456789abcdef";
  r.shards = {{"127.0.0.1:1", 0, s.prompt_tokens}};
  r.token_ids = prompt;
  r.sampling = s.sampling;
  r.max_new_tokens = s.new_tokens;
  return r;
}

TEST_P(DecodeSchedulerTest, ACancelledRequestLeavesTheBatchAndTheMemoryReturnsToZero) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  NoPeers peers;
  ShardRunnerOptions options;
  options.metrics = &metrics;
  ShardRunner runner(*engine_, peers, options);
  std::vector<StreamSpec> streams = Streams();
  const size_t cancelled = 2;
  streams[cancelled].new_tokens = 1000;  // would run long; cancelled after 4 tokens
  const size_t slow = 4;                // holds its 2nd token until the others are done
  std::vector<RecordingEvents> events(streams.size());
  events[slow].HoldAt(2);
  std::vector<absl::Status> results(streams.size());
  std::atomic<bool> cancel{false};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < streams.size(); ++i) {
    threads.emplace_back([&, i] {
      const ShardRequest r = RequestOf(absl::StrCat("req-", i), streams[i], PromptOf(streams[i]));
      results[i] = runner.RunShard(r, events[i], [&, i] { return i == cancelled && cancel.load(); });
    });
  }
  ASSERT_TRUE(events[cancelled].WaitForTokens(4));
  cancel = true;
  for (size_t i = 0; i < streams.size(); ++i) {
    if (i == slow) continue;
    threads[i].join();
  }
  EXPECT_FALSE(events[slow].finished()) << "the slow client's request should still wait on it";
  events[slow].Release();
  threads[slow].join();

  for (size_t i = 0; i < streams.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << GetParam() << " stream " << i);
    if (i == cancelled) {
      EXPECT_EQ(results[i].code(), absl::StatusCode::kCancelled) << results[i];
      EXPECT_LT(events[i].tokens().size(), 1000u);
      continue;
    }
    EXPECT_TRUE(results[i].ok()) << results[i];
    EXPECT_TRUE(events[i].finished());
    EXPECT_EQ(events[i].tokens(), Alone(streams[i]).tokens);
  }
  EXPECT_EQ(runner.memory_used_bytes(), 0);
  EXPECT_EQ(runner.active_requests(), 0);
  EXPECT_EQ(metrics.memory_used_bytes.Value(), 0);
  EXPECT_EQ(metrics.active_requests.Value(), 0);
}

// The finish rules of a shard request hold in batched decode: a stop id, the
// EOS id and max_new_tokens each end their stream at the token they match,
// with the reason and count a stream alone would report.
TEST_P(DecodeSchedulerTest, StopIdsEosAndLengthEndStreamsAsAlone) {
  NoPeers peers;
  ShardRunner runner(*engine_, peers, ShardRunnerOptions{});
  const StreamSpec base = Streams()[1];  // greedy
  const std::vector<int32_t> alone = Alone(base).tokens;
  // The first index at which each rule fires: a stop id at 5, EOS at 3, length at 7.
  auto first_of = [&](int32_t token) {
    return static_cast<int32_t>(std::find(alone.begin(), alone.end(), token) - alone.begin()) + 1;
  };
  std::vector<ShardRequest> requests(3, RequestOf("", base, PromptOf(base)));
  requests[0].request_id = "stop";
  requests[0].stop_token_ids = {alone[4]};
  requests[1].request_id = "eos";
  requests[1].eos_token_id = alone[2];
  requests[2].request_id = "length";
  requests[2].max_new_tokens = 7;
  const std::vector<FinishReason> reasons = {FinishReason::kStopToken, FinishReason::kEos, FinishReason::kLength};
  const std::vector<int32_t> counts = {first_of(alone[4]), first_of(alone[2]), 7};
  std::vector<RecordingEvents> events(requests.size());
  std::vector<absl::Status> results(requests.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < requests.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = runner.RunShard(requests[i], events[i], [] { return false; }); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << GetParam() << " " << requests[i].request_id);
    ASSERT_TRUE(results[i].ok()) << results[i];
    EXPECT_EQ(events[i].reason(), reasons[i]);
    EXPECT_EQ(events[i].completion_tokens(), counts[i]);
    EXPECT_EQ(events[i].tokens(), std::vector<int32_t>(alone.begin(), alone.begin() + counts[i]));
  }
}

INSTANTIATE_TEST_SUITE_P(HfTiny, DecodeSchedulerTest, testing::HfTinyFamilies(), testing::HfTinyTestName);

}  // namespace
}  // namespace tessera
