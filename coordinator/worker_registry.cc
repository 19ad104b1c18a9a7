// Health checks run as concurrent async GetStatus calls (one slow worker does
// not delay the others' verdicts); results are applied under the lock.
#include "coordinator/worker_registry.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/blocking_counter.h"
#include "common/status_macros.h"
#include "coordinator/shard_placement.h"
#include "coordinator/worker_capacity.h"
#include "rpc/grpc_util.h"

namespace tessera {

struct WorkerRegistry::Probe {
  uint64_t id = 0;
  std::string address;
  std::shared_ptr<v1::Worker::Stub> stub;
  int64_t reserved_at_send = 0;
  grpc::ClientContext context;
  v1::GetWorkerStatusRequest request;
  v1::WorkerStatus response;
  grpc::Status status;
};

Admission::~Admission() { registry_->Release(worker_ids_, shards_); }

WorkerRegistry::WorkerRegistry(const CoordinatorOptions& options, int64_t expected_vocab_size)
    : options_(options), expected_vocab_size_(expected_vocab_size) {}

WorkerRegistry::~WorkerRegistry() { StopHealthChecks(); }

void WorkerRegistry::StartHealthChecks() {
  absl::MutexLock lock(&mu_);
  if (health_thread_.joinable()) return;
  stop_health_ = false;
  health_thread_ = std::thread([this] { HealthLoop(); });
}

void WorkerRegistry::StopHealthChecks() {
  {
    absl::MutexLock lock(&mu_);
    stop_health_ = true;
  }
  if (health_thread_.joinable()) health_thread_.join();
}

void WorkerRegistry::HealthLoop() {
  while (true) {
    CheckAllWorkers();
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stop_health_), options_.health_interval)) return;
  }
}

int WorkerRegistry::Register(const std::string& address) {
  auto probe = std::make_unique<Probe>();
  bool probe_now = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const auto& entry) { return entry.second.address == address; });
    if (it == entries_.end()) {
      Entry entry;
      entry.address = address;
      entry.stub = v1::Worker::NewStub(MakeChannel(address));
      it = entries_.emplace(next_id_++, std::move(entry)).first;
      std::fprintf(stderr, "coordinator: worker %s registered\n", address.c_str());
    }
    it->second.last_heard = absl::Now();
    probe_now = !it->second.ready;
    probe->id = it->first;
    probe->address = address;
    probe->stub = it->second.stub;
    probe->reserved_at_send = it->second.reserved_bytes;
  }
  if (probe_now) {
    std::vector<std::unique_ptr<Probe>> probes;
    probes.push_back(std::move(probe));
    RunProbes(probes);
    int ready = 0;
    std::vector<std::string> left;
    {
      absl::MutexLock lock(&mu_);
      // The worker may still be starting its server: only health checks count failures.
      ApplyProbe(*probes.front(), /*count_failure=*/false, left);
      ready = ReadyCountLocked();
    }
    NotifyLeft(left);
    NotifyChange();
    return ready;
  }
  absl::MutexLock lock(&mu_);
  return ReadyCountLocked();
}

void WorkerRegistry::CheckAllWorkers() {
  std::vector<std::unique_ptr<Probe>> probes;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : entries_) {
      auto probe = std::make_unique<Probe>();
      probe->id = id;
      probe->address = entry.address;
      probe->stub = entry.stub;
      probe->reserved_at_send = entry.reserved_bytes;
      probes.push_back(std::move(probe));
    }
  }
  RunProbes(probes);
  std::vector<std::string> left;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& probe : probes) ApplyProbe(*probe, /*count_failure=*/true, left);
    ForgetSilentWorkers(left);
  }
  NotifyLeft(left);
  NotifyChange();
}

void WorkerRegistry::NotifyLeft(const std::vector<std::string>& left) const {
  if (!left_listener_) return;
  for (const std::string& address : left) left_listener_(address);
}

void WorkerRegistry::RunProbes(std::vector<std::unique_ptr<Probe>>& probes) {
  if (probes.empty()) return;
  absl::BlockingCounter pending(static_cast<int>(probes.size()));
  for (auto& probe : probes) {
    probe->context.set_deadline(absl::ToChronoTime(absl::Now() + options_.status_deadline));
    Probe* p = probe.get();
    p->stub->async()->GetStatus(&p->context, &p->request, &p->response, [p, &pending](grpc::Status status) {
      p->status = std::move(status);
      pending.DecrementCount();
    });
  }
  pending.Wait();
}

void WorkerRegistry::SetNotReady(Entry& entry, const std::string& reason, std::vector<std::string>& left) {
  if (entry.not_ready_reason != reason) {
    std::fprintf(stderr, "coordinator: worker %s not ready: %s\n", entry.address.c_str(), reason.c_str());
    entry.not_ready_reason = reason;
  }
  if (entry.ready) {
    entry.ready = false;
    left.push_back(entry.address);
  }
}

void WorkerRegistry::ApplyProbe(const Probe& probe, bool count_failure, std::vector<std::string>& left) {
  auto it = entries_.find(probe.id);
  if (it == entries_.end()) return;
  Entry& entry = it->second;
  const absl::Status failure = FromGrpcStatus(probe.status);
  if (failure.ok()) {
    // It answered, but with numbers it cannot have or for another model: not
    // ready at once, whatever it reported before; it stays known (and is
    // checked again) while it answers.
    absl::Status refused = CheckWorkerStatus(probe.response);
    if (refused.ok() && expected_vocab_size_ > 0 && probe.response.vocab_size() != expected_vocab_size_) {
      refused = absl::FailedPreconditionError(absl::StrCat("it serves a model with vocab_size ",
                                                           probe.response.vocab_size(), ", the coordinator's has ",
                                                           expected_vocab_size_));
    }
    entry.last_heard = absl::Now();
    if (!refused.ok()) {
      SetNotReady(entry, std::string(refused.message()), left);
      return;
    }
    const bool was_ready = entry.ready;
    entry.status = probe.response;
    entry.has_status = true;
    entry.ready = true;
    entry.not_ready_reason.clear();
    entry.consecutive_failures = 0;
    // Reservations made or returned while the call was in flight explain
    // whatever the worker reported: take the larger of the two.
    const int64_t explained = std::max(probe.reserved_at_send, entry.reserved_bytes);
    entry.unexplained_bytes = std::max<int64_t>(0, entry.status.memory_used_bytes() - explained);
    if (!was_ready) {
      const std::string transports = absl::StrJoin(entry.status.peer_transports(), ",");
      std::fprintf(stderr, "coordinator: worker %s ready (%s, capacity %lld tokens, backend %s, peer transports %s)\n",
                   entry.address.c_str(), entry.status.model_type().c_str(),
                   static_cast<long long>(WorkerCapacityTokens(entry.status)),
                   entry.status.backend().empty() ? "unreported" : entry.status.backend().c_str(),
                   transports.empty() ? "unreported" : transports.c_str());
    }
    return;
  }
  if (!count_failure) return;
  ++entry.consecutive_failures;
  if (entry.consecutive_failures >= options_.failures_before_unready) {
    SetNotReady(entry, absl::StrCat("failing health checks: ", failure.message()), left);
  }
}

void WorkerRegistry::ForgetSilentWorkers(std::vector<std::string>& left) {
  const absl::Time now = absl::Now();
  for (auto it = entries_.begin(); it != entries_.end();) {
    const Entry& entry = it->second;
    if (!entry.ready && entry.running_shards == 0 && now - entry.last_heard > options_.forget_after) {
      std::fprintf(stderr, "coordinator: worker %s forgotten (silent for %s)\n", entry.address.c_str(),
                   absl::FormatDuration(now - entry.last_heard).c_str());
      left.push_back(entry.address);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

void WorkerRegistry::MarkUnreachable(const std::string& address) {
  std::vector<std::string> left;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, entry] : entries_) {
      if (entry.address != address || !entry.ready) continue;
      entry.consecutive_failures = std::max(entry.consecutive_failures, options_.failures_before_unready);
      SetNotReady(entry, "unreachable from a running request; not ready until it answers a health check", left);
    }
  }
  NotifyLeft(left);
  NotifyChange();
}

int WorkerRegistry::ReadyCountLocked() const {
  int ready = 0;
  for (const auto& [id, entry] : entries_) ready += entry.ready ? 1 : 0;
  return ready;
}

WorkerView WorkerRegistry::ViewOf(const Entry& entry) const {
  WorkerView view;
  view.address = entry.address;
  view.ready = entry.ready;
  view.status = entry.status;
  view.reserved_bytes = entry.reserved_bytes;
  view.held_bytes = SaturatingAdd(entry.reserved_bytes, entry.unexplained_bytes);
  view.running_shards = entry.running_shards;
  view.not_ready_reason = entry.ready ? std::string() : entry.not_ready_reason;
  if (entry.has_status) {
    view.capacity_tokens = WorkerCapacityTokens(entry.status);
    view.free_tokens = WorkerFreeTokens(entry.status, view.held_bytes);
  }
  return view;
}

std::vector<std::pair<std::string, std::shared_ptr<v1::Worker::Stub>>> WorkerRegistry::ReadyStubs() const {
  std::vector<std::pair<std::string, std::shared_ptr<v1::Worker::Stub>>> stubs;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, entry] : entries_) {
    if (entry.ready) stubs.emplace_back(entry.address, entry.stub);
  }
  return stubs;
}

std::vector<WorkerView> WorkerRegistry::Workers() const {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerView> views;
  for (const auto& [id, entry] : entries_) views.push_back(ViewOf(entry));
  return views;
}

absl::StatusOr<std::unique_ptr<Admission>> WorkerRegistry::Admit(int64_t prompt_tokens, int64_t max_new_tokens,
                                                                 const std::set<std::string>& excluded,
                                                                 const std::string& preferred, int64_t align_tokens,
                                                                 bool zigzag) {
  absl::StatusOr<std::unique_ptr<Admission>> admission;
  {
    absl::MutexLock lock(&mu_);
    admission = AdmitLocked(prompt_tokens, max_new_tokens, excluded, preferred, align_tokens, zigzag);
  }
  if (admission.ok()) NotifyChange();
  return admission;
}

absl::StatusOr<std::unique_ptr<Admission>> WorkerRegistry::AdmitLocked(int64_t prompt_tokens, int64_t max_new_tokens,
                                                                       const std::set<std::string>& excluded,
                                                                       const std::string& preferred,
                                                                       int64_t align_tokens, bool zigzag) {
  std::vector<Entry*> ready;
  std::vector<uint64_t> ready_ids;
  std::vector<WorkerRoom> rooms;
  for (auto& [id, entry] : entries_) {
    if (!entry.ready || excluded.count(entry.address) > 0) continue;
    const WorkerView view = ViewOf(entry);
    ready.push_back(&entry);
    ready_ids.push_back(id);
    rooms.push_back({view.capacity_tokens, view.free_tokens, entry.running_shards, WorkerPassTokens(entry.status),
                     WorkerPrefillRounds(entry.status)});
  }
  PlacementRequest request;
  request.prompt_tokens = prompt_tokens;
  request.max_new_tokens = max_new_tokens;
  request.min_shard_tokens = options_.min_shard_tokens;
  request.chunk_size = ready.empty() ? 1 : std::max(1, ready.front()->status.chunk_size());
  // Shards that end on prefix blocks leave spans a later prompt can resume
  // from; when that alignment leaves some shard without room, the usual one.
  const int64_t chunk_size = request.chunk_size;
  request.zigzag = zigzag;
  if (align_tokens > 0 && !zigzag) request.chunk_size = std::lcm<int64_t>(chunk_size, align_tokens);
  request.rotation = admissions_;
  std::optional<std::vector<ShardSlot>> preferred_slots;  // one shard on the worker holding the prefix
  for (size_t i = 0; i < ready.size() && !preferred.empty(); ++i) {
    if (ready[i]->address != preferred) continue;
    const WorkerRoom alone = rooms[i];
    absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(request, absl::MakeConstSpan(&alone, 1));
    if (slots.ok() && slots->size() == 1) {
      (*slots)[0].worker = static_cast<int>(i);
      preferred_slots = *std::move(slots);
    }
  }
  if (!preferred_slots) {
    absl::StatusOr<std::vector<ShardSlot>> slots = PlaceShards(request, rooms);
    if (!slots.ok() && request.chunk_size != chunk_size) {
      request.chunk_size = chunk_size;
      slots = PlaceShards(request, rooms);
    }
    if (!slots.ok()) return slots.status();
    preferred_slots = *std::move(slots);
  }
  const std::vector<ShardSlot>& slots = *preferred_slots;
  ++admissions_;

  std::unique_ptr<Admission> admission(new Admission(this));
  admission->eos_token_id_ = ready.front()->status.eos_token_id();
  for (size_t rank = 0; rank < slots.size(); ++rank) {
    const ShardSlot& slot = slots[rank];
    Entry& entry = *ready[slot.worker];
    const bool last = rank + 1 == slots.size();
    const int64_t tokens = slot.tokens() + (last ? max_new_tokens : 0);
    ShardLease lease;
    lease.address = entry.address;
    lease.stub = entry.stub;
    lease.token_begin = slot.token_begin;
    lease.token_end = slot.token_end;
    lease.late_begin = slot.late_begin;
    lease.late_end = slot.late_end;
    lease.prefill_rounds = slot.prefill_rounds;
    lease.reserved_bytes = ShardReservationBytes(entry.status, tokens);
    lease.peer_transports.assign(entry.status.peer_transports().begin(), entry.status.peer_transports().end());
    lease.device_id = entry.status.device_id();
    entry.reserved_bytes = SaturatingAdd(entry.reserved_bytes, lease.reserved_bytes);
    ++entry.running_shards;
    admission->worker_ids_.push_back(ready_ids[slot.worker]);
    admission->shards_.push_back(std::move(lease));
  }
  return admission;
}

absl::StatusOr<std::unique_ptr<Admission>> WorkerRegistry::AdmitResumed(int64_t prompt_tokens,
                                                                        int64_t max_new_tokens,
                                                                        const std::vector<SegmentHint>& held,
                                                                        const std::set<std::string>& excluded) {
  std::unique_ptr<Admission> admission;
  {
    absl::MutexLock lock(&mu_);
    if (held.empty() || held.back().end >= prompt_tokens) {
      return absl::ResourceExhaustedError("no resumable prefix");
    }
    std::vector<Entry*> entries;
    std::vector<uint64_t> ids;
    for (size_t rank = 0; rank < held.size(); ++rank) {
      Entry* found = nullptr;
      for (auto& [id, entry] : entries_) {
        if (entry.address == held[rank].address && entry.ready && excluded.count(entry.address) == 0) {
          found = &entry;
          ids.push_back(id);
          break;
        }
      }
      const bool last = rank + 1 == held.size();
      const int64_t tokens = last ? prompt_tokens - held[rank].begin + max_new_tokens : held[rank].end - held[rank].begin;
      if (found == nullptr || ViewOf(*found).free_tokens < tokens) {
        return absl::ResourceExhaustedError(absl::StrCat("worker ", held[rank].address, " cannot resume its part now"));
      }
      for (const Entry* e : entries) {
        if (e == found) return absl::ResourceExhaustedError("a worker holds two parts of one prefix");
      }
      entries.push_back(found);
    }
    admission.reset(new Admission(this));
    admission->eos_token_id_ = entries.front()->status.eos_token_id();
    admission->resume_from_ = held.back().end;
    for (size_t rank = 0; rank < held.size(); ++rank) {
      Entry& entry = *entries[rank];
      const bool last = rank + 1 == held.size();
      ShardLease lease;
      lease.address = entry.address;
      lease.stub = entry.stub;
      lease.token_begin = held[rank].begin;
      lease.token_end = last ? prompt_tokens : held[rank].end;
      const int64_t tokens = lease.token_end - lease.token_begin + (last ? max_new_tokens : 0);
      lease.reserved_bytes = ShardReservationBytes(entry.status, tokens);
      lease.peer_transports.assign(entry.status.peer_transports().begin(), entry.status.peer_transports().end());
      lease.device_id = entry.status.device_id();
      entry.reserved_bytes = SaturatingAdd(entry.reserved_bytes, lease.reserved_bytes);
      ++entry.running_shards;
      admission->worker_ids_.push_back(ids[rank]);
      admission->shards_.push_back(std::move(lease));
    }
    ++admissions_;
  }
  NotifyChange();
  return admission;
}

void WorkerRegistry::Release(const std::vector<uint64_t>& worker_ids, const std::vector<ShardLease>& shards) {
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < worker_ids.size(); ++i) {
      auto it = entries_.find(worker_ids[i]);
      if (it == entries_.end()) continue;
      it->second.reserved_bytes = std::max<int64_t>(0, it->second.reserved_bytes - shards[i].reserved_bytes);
      --it->second.running_shards;
    }
  }
  NotifyChange();
}

}  // namespace tessera
