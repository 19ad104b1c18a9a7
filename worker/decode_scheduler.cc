// The scheduler thread waits for runnable members, picks a batch under the
// lock, then runs the step without it: the states' own mutexes (in batch
// order; AttendKv takes one at a time, so no cycle) are held around the pass,
// sampling and event hand-off follow, and the members' in_step marks clear so
// that a waiting Leave may return.
#include "worker/decode_scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tessera {
namespace {

// How often a call thread waiting for an event looks at its cancelled flag.
constexpr auto kCancelPoll = std::chrono::milliseconds(20);

double SecondsBetween(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// Limits below 1 would let no request run: they count as 1.
DecodeSchedulerOptions AtLeastOne(DecodeSchedulerOptions options) {
  options.max_batch = std::max(1, options.max_batch);
  options.max_undelivered_tokens = std::max(1, options.max_undelivered_tokens);
  return options;
}

}  // namespace

std::optional<FinishReason> DecodeStopRules::Check(int32_t token, int32_t generated) const {
  if (std::find(stop_token_ids.begin(), stop_token_ids.end(), token) != stop_token_ids.end()) {
    return FinishReason::kStopToken;
  }
  if (eos_token_id >= 0 && token == eos_token_id) return FinishReason::kEos;
  if (generated >= max_new_tokens) return FinishReason::kLength;
  return std::nullopt;
}

DecodeScheduler::DecodeScheduler(Engine& engine, DecodeSchedulerOptions options)
    : engine_(engine), options_(AtLeastOne(options)), thread_([this] { Loop(); }) {}

DecodeScheduler::~DecodeScheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    for (const std::shared_ptr<Entry>& e : queue_) e->ready.notify_all();
  }
  work_.notify_all();
  thread_.join();
}

std::unique_ptr<DecodeScheduler::Member> DecodeScheduler::Join(DecodeJoin join) {
  auto entry = std::make_shared<Entry>();
  entry->join = std::move(join);
  entry->joined = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(entry);
  }
  work_.notify_one();
  return std::make_unique<Member>(*this, std::move(entry));
}

int DecodeScheduler::members() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

bool DecodeScheduler::Runnable(const Entry& e) const {
  const bool cancelled = e.join.cancelled != nullptr && e.join.cancelled->load();
  return !e.done && !e.left && !cancelled &&
         static_cast<int>(e.events.size()) < options_.max_undelivered_tokens;
}

void DecodeScheduler::Leave(const std::shared_ptr<Entry>& entry) {
  std::unique_lock<std::mutex> lock(mu_);
  entry->left = true;
  step_done_.wait(lock, [&] { return !entry->in_step; });
  queue_.erase(std::remove(queue_.begin(), queue_.end(), entry), queue_.end());
}

DecodeScheduler::Member::~Member() { scheduler_.Leave(entry_); }

absl::StatusOr<DecodeEvent> DecodeScheduler::Member::Next() {
  Entry& e = *entry_;
  std::unique_lock<std::mutex> lock(scheduler_.mu_);
  while (true) {
    if (e.join.cancelled != nullptr && e.join.cancelled->load()) return absl::CancelledError("request cancelled");
    if (!e.events.empty()) {
      DecodeEvent event = std::move(e.events.front());
      e.events.pop_front();
      scheduler_.work_.notify_one();  // it may be runnable again
      return event;
    }
    if (!e.error.ok()) return e.error;
    if (scheduler_.stop_) return absl::UnavailableError("the worker's decode scheduler stopped");
    e.ready.wait_for(lock, kCancelPoll);
  }
}

void DecodeScheduler::PickBatch(std::vector<std::shared_ptr<Entry>>& batch) {
  batch.clear();
  std::deque<std::shared_ptr<Entry>> rest;
  for (std::shared_ptr<Entry>& e : queue_) {
    if (static_cast<int>(batch.size()) < options_.max_batch && Runnable(*e)) {
      batch.push_back(std::move(e));
    } else if (!e->left) {
      rest.push_back(std::move(e));
    }
  }
  int waiting = 0;
  for (const std::shared_ptr<Entry>& e : rest) waiting += Runnable(*e) ? 1 : 0;
  queue_ = std::move(rest);
  for (const std::shared_ptr<Entry>& e : batch) {
    e->in_step = true;
    queue_.push_back(e);
  }
  if (options_.metrics != nullptr) options_.metrics->decode_waiting_requests.Set(waiting);
}

void DecodeScheduler::Loop() {
  std::vector<std::shared_ptr<Entry>> batch;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      // A member becomes runnable by joining or by taking a token (both
      // notify); one that is cancelled stops being runnable on its own. The
      // timeout only bounds how stale the waiting gauge can be.
      work_.wait_for(lock, std::chrono::seconds(1), [&] {
        return stop_ || std::any_of(queue_.begin(), queue_.end(), [&](const auto& e) { return Runnable(*e); });
      });
      if (stop_) return;
      PickBatch(batch);
    }
    if (batch.empty()) continue;
    RunStep(batch);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const std::shared_ptr<Entry>& e : batch) {
        e->in_step = false;
        e->ready.notify_all();
      }
    }
    step_done_.notify_all();
  }
}

void DecodeScheduler::RunStep(const std::vector<std::shared_ptr<Entry>>& batch) {
  const int64_t vocab = engine_.config().vocab_size;
  WorkerMetrics* metrics = options_.metrics;
  std::vector<DecodeRow> rows;
  rows.reserve(batch.size());
  for (const std::shared_ptr<Entry>& e : batch) rows.push_back({e->join.state, e->join.next_token, e->join.ctx});

  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<DecodeStepResult> result;
  {
    std::vector<std::unique_lock<std::mutex>> locks;
    locks.reserve(batch.size());
    for (const std::shared_ptr<Entry>& e : batch) {
      if (e->join.state_mu != nullptr) locks.emplace_back(*e->join.state_mu);
    }
    result = engine_.DecodeStep(rows);
    for (const std::shared_ptr<Entry>& e : batch) {
      if (e->join.memory_bytes != nullptr) e->join.memory_bytes->store(e->join.state->MemoryBytes());
    }
  }
  if (metrics != nullptr) {
    metrics->decode_step_seconds.Observe(SecondsBetween(start, std::chrono::steady_clock::now()));
    metrics->decode_batch_size.Observe(static_cast<double>(batch.size()));
  }

  // Sampling and the stop rules touch only each member's own join (this
  // thread's since it joined); the events go out under the lock.
  std::vector<std::vector<DecodeEvent>> events(batch.size());
  std::vector<absl::Status> errors(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    Entry& e = *batch[i];
    if (metrics != nullptr && !e.stepped) metrics->decode_queue_seconds.Observe(SecondsBetween(e.joined, start));
    if (!result.ok()) {
      errors[i] = absl::Status(result.status().code(), absl::StrCat("decode step of ", batch.size(),
                                                                   " requests failed: ", result.status().message()));
      continue;
    }
    if (!result->status[i].ok()) {
      errors[i] = result->status[i];
      continue;
    }
    const absl::Span<const float> row(result->logits.data() + i * vocab, vocab);
    DecodeJoin& j = e.join;
    DecodeEvent token;
    token.sampled = j.sampler->SampleDetailed(row);
    if (j.return_logits) token.logits.assign(row.begin(), row.end());
    ++j.generated;
    const std::optional<FinishReason> finish = j.rules.Check(token.sampled.token, j.generated);
    j.next_token = token.sampled.token;
    events[i].push_back(std::move(token));
    if (finish.has_value()) {
      DecodeEvent finished;
      finished.kind = DecodeEvent::Kind::kFinished;
      finished.reason = *finish;
      finished.generated = j.generated;
      events[i].push_back(std::move(finished));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < batch.size(); ++i) {
    Entry& e = *batch[i];
    e.stepped = true;
    if (!errors[i].ok()) {
      e.error = std::move(errors[i]);
      e.done = true;
      continue;
    }
    for (DecodeEvent& event : events[i]) {
      e.done = e.done || event.kind == DecodeEvent::Kind::kFinished;
      e.events.push_back(std::move(event));
    }
  }
}

}  // namespace tessera
