// RunShard is the heart: admit (memory), prefill with peers (progress and
// optional logits streamed), then either decode (last shard) or hold K/V for
// split-KV attention until the coordinator ends the call. Cancellation of the
// call is watched on a side thread and wakes any peer wait at once.
#include "services/worker_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/grpc_peer_group.h"
#include "services/grpc_remote_kv.h"
#include "rpc/grpc_util.h"
#include "worker/sampler.h"

#ifdef TESSERA_HAVE_NCCL
#include "worker/nccl/nccl_peer_group.h"
#endif

namespace tessera {
namespace {

using tessera::v1::RunShardEvent;
using tessera::v1::RunShardRequest;

constexpr auto kCancelPoll = std::chrono::milliseconds(20);
constexpr auto kProgressInterval = std::chrono::milliseconds(200);
constexpr auto kAdmitGrace = std::chrono::seconds(2);

// Sets `cancelled` and fails the request's peer waits when the call is cancelled.
class CancellationWatcher {
 public:
  CancellationWatcher(grpc::ServerContext* context, PeerMailbox& mailbox, const std::string& request_id)
      : thread_([this, context, &mailbox, request_id] {
          while (!done_.load()) {
            if (context->IsCancelled()) {
              cancelled_.store(true);
              mailbox.Cancel(request_id);
              return;
            }
            std::this_thread::sleep_for(kCancelPoll);
          }
        }) {}
  ~CancellationWatcher() {
    done_.store(true);
    thread_.join();
  }
  bool cancelled() const { return cancelled_.load(); }
  const std::atomic<bool>& cancelled_flag() const { return cancelled_; }

 private:
  std::atomic<bool> done_{false};
  std::atomic<bool> cancelled_{false};
  std::thread thread_;
};

absl::Status ValidateRunShard(const RunShardRequest& r, const ModelConfig& config) {
  const int shards = r.shards_size();
  if (shards < 1) return absl::InvalidArgumentError("RunShard needs at least one shard");
  if (r.rank() < 0 || r.rank() >= shards) {
    return absl::InvalidArgumentError(absl::StrCat("rank must be in [0, ", shards, "). Given: ", r.rank()));
  }
  int64_t expected_begin = 0;
  for (int i = 0; i < shards; ++i) {
    const auto& s = r.shards(i);
    if (s.token_begin() != expected_begin || s.token_end() <= s.token_begin()) {
      return absl::InvalidArgumentError(absl::StrCat("shard ", i, " covers [", s.token_begin(), ", ", s.token_end(),
                                                     "); shards must be non-empty and contiguous from 0"));
    }
    if (s.address().empty()) return absl::InvalidArgumentError(absl::StrCat("shard ", i, " has no address"));
    expected_begin = s.token_end();
  }
  const auto& mine = r.shards(r.rank());
  if (r.token_ids_size() != mine.token_end() - mine.token_begin()) {
    return absl::InvalidArgumentError(absl::StrCat("shard ", r.rank(), " covers ", mine.token_end() - mine.token_begin(),
                                                   " tokens but ", r.token_ids_size(), " token ids were sent"));
  }
  for (int i = 0; i < r.token_ids_size(); ++i) {
    if (r.token_ids(i) < 0 || r.token_ids(i) >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token id at position ", mine.token_begin() + i,
                                                     " must be < vocab size ", config.vocab_size,
                                                     ". Given: ", r.token_ids(i)));
    }
  }
  return absl::OkStatus();
}

tessera::v1::Logits ToLogits(absl::Span<const float> values, int64_t vocab) {
  tessera::v1::Logits out;
  out.set_rows(static_cast<int32_t>(values.size() / vocab));
  out.set_vocab_size(static_cast<int32_t>(vocab));
  out.mutable_values()->Add(values.begin(), values.end());
  return out;
}

absl::Status Write(grpc::ServerWriter<RunShardEvent>* writer, const RunShardEvent& event) {
  if (!writer->Write(event)) return absl::CancelledError("the coordinator went away");
  return absl::OkStatus();
}

bool IsStopToken(const RunShardRequest& r, int32_t token) {
  const auto& stops = r.stopping().stop_token_ids();
  return std::find(stops.begin(), stops.end(), token) != stops.end();
}

}  // namespace

WorkerService::WorkerService(Engine& engine, WorkerOptions options)
    : engine_(engine), options_(std::move(options)) {
  if (options_.metrics != nullptr) options_.metrics->memory_capacity_bytes.Set(options_.memory_budget_bytes);
  PublishMemoryMetrics();
}

void WorkerService::PublishMemoryMetrics() {
  if (options_.metrics == nullptr) return;
  options_.metrics->memory_used_bytes.Set(static_cast<double>(memory_used_bytes()));
  options_.metrics->active_requests.Set(active_requests());
}

int64_t WorkerService::memory_used_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t used = 0;
  for (const auto& [id, shard] : shards_) used += std::max(shard->reserved_bytes, shard->actual_bytes.load());
  return used;
}

int WorkerService::active_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(shards_.size());
}

absl::StatusOr<std::shared_ptr<WorkerService::ActiveShard>> WorkerService::Admit(const RunShardRequest& r) {
  const bool last = r.rank() == r.shards_size() - 1;
  const int64_t tokens = r.token_ids_size() + (last ? std::max(0, r.stopping().max_new_tokens()) : 0);
  const int64_t needed = std::max<int64_t>(r.reserved_bytes(), tokens * engine_.KvBytesPerToken() +
                                                                    engine_.StateBytesPerRequest());
  if (options_.max_shard_tokens > 0 && r.token_ids_size() > options_.max_shard_tokens) {
    return absl::ResourceExhaustedError(absl::StrCat("worker ", options_.advertised_address, " prefills at most ",
                                                     options_.max_shard_tokens, " tokens per shard (GPU memory for "
                                                     "activations); shard ", r.rank(), " has ", r.token_ids_size()));
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (shards_.count(r.request_id()) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("request ", r.request_id(), " is already running here"));
  }
  auto reserved = [this] {
    int64_t used = 0;
    for (const auto& [id, shard] : shards_) used += shard->reserved_bytes;
    return used;
  };
  // The coordinator frees its reservation when a cancelled call closes; the
  // shard here frees a moment later. Wait that moment out before refusing.
  released_.wait_for(lock, kAdmitGrace, [&] { return reserved() + needed <= options_.memory_budget_bytes; });
  const int64_t used = reserved();
  if (used + needed > options_.memory_budget_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("worker ", options_.advertised_address, " has ",
                                                     options_.memory_budget_bytes - used, " bytes free, request ",
                                                     r.request_id(), " needs ", needed));
  }
  auto shard = std::make_shared<ActiveShard>();
  ASSIGN_OR_RETURN(shard->state, engine_.NewState(r.shards(r.rank()).token_begin(), tokens));
  shard->reserved_bytes = needed;
  shards_[r.request_id()] = shard;
  return shard;
}

void WorkerService::Release(const std::string& request_id) {
  mailbox_.Cancel(request_id);  // drops blocks that are still on their way
  {
    std::lock_guard<std::mutex> lock(mu_);
    shards_.erase(request_id);
  }
  released_.notify_all();
  PublishMemoryMetrics();
}

std::shared_ptr<WorkerService::ActiveShard> WorkerService::Find(const std::string& request_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = shards_.find(request_id);
  return it == shards_.end() ? nullptr : it->second;
}

grpc::Status WorkerService::GetStatus(grpc::ServerContext*, const tessera::v1::GetWorkerStatusRequest*,
                                      tessera::v1::WorkerStatus* response) {
  const ModelConfig& config = engine_.config();
  response->set_address(options_.advertised_address);
  response->set_model_type(config.model_type);
  response->set_vocab_size(static_cast<int32_t>(config.vocab_size));
  response->set_memory_budget_bytes(options_.memory_budget_bytes);
  response->set_memory_used_bytes(memory_used_bytes());
  response->set_kv_bytes_per_token(engine_.KvBytesPerToken());
  response->set_state_bytes_per_request(engine_.StateBytesPerRequest());
  response->set_active_requests(active_requests());
  response->set_chunk_size(static_cast<int32_t>(config.mamba.chunk_size));
  response->set_max_position_embeddings(config.max_position_embeddings);
  response->set_eos_token_id(config.eos_token_id);
  response->set_num_layers(static_cast<int32_t>(config.blocks.size()));
  response->set_metrics_address(options_.metrics_address);
  response->set_backend(engine_.backend());
  response->set_max_shard_tokens(options_.max_shard_tokens);
  response->add_peer_transports("grpc");
  if (options_.nccl_groups != nullptr) response->add_peer_transports("nccl");
  return grpc::Status::OK;
}

grpc::Status WorkerService::NewNcclUniqueId(grpc::ServerContext*, const tessera::v1::NewNcclUniqueIdRequest* request,
                                            tessera::v1::NewNcclUniqueIdResponse* response) {
#ifdef TESSERA_HAVE_NCCL
  if (options_.nccl_groups != nullptr) {
    absl::StatusOr<std::string> id = tessera::NewNcclUniqueId();
    if (!id.ok()) return ToGrpcStatus(id.status());
    response->set_unique_id(*id);
    return grpc::Status::OK;
  }
#endif
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      absl::StrCat("worker ", options_.advertised_address, " does not offer the NCCL transport (group ",
                                   request->group_id(), ")"));
}

grpc::Status WorkerService::Deliver(grpc::ServerContext*, const tessera::v1::PeerBlock* request,
                                    tessera::v1::DeliverAck*) {
  const std::string& bytes = request->data();
  if (bytes.size() % sizeof(float) != 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "peer block size is not a whole number of floats");
  }
  std::vector<float> data(bytes.size() / sizeof(float));
  std::memcpy(data.data(), bytes.data(), bytes.size());
  mailbox_.Put(request->request_id(), request->tag(), request->from_rank(), std::move(data));
  return grpc::Status::OK;
}

grpc::Status WorkerService::AttendKv(grpc::ServerContext*, const tessera::v1::AttendKvRequest* request,
                                     tessera::v1::AttendKvResponse* response) {
  std::shared_ptr<ActiveShard> shard = Find(request->request_id());
  if (shard == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("request ", request->request_id(), " holds no K/V here"));
  }
  absl::StatusOr<AttentionPartial> part;
  {
    std::lock_guard<std::mutex> lock(shard->mu);
    part = engine_.AttendStoredKv(*shard->state, request->attention_slot(), request->q(), request->q_len(),
                                  request->q_position0());
  }
  if (!part.ok()) return ToGrpcStatus(part.status());
  response->mutable_out()->Add(part->out.begin(), part->out.end());
  response->mutable_lse()->Add(part->lse.begin(), part->lse.end());
  return grpc::Status::OK;
}

grpc::Status WorkerService::RunShard(grpc::ServerContext* context, const RunShardRequest* request,
                                     grpc::ServerWriter<RunShardEvent>* writer) {
  const ModelConfig& config = engine_.config();
  if (absl::Status valid = ValidateRunShard(*request, config); !valid.ok()) return ToGrpcStatus(valid);
  absl::StatusOr<std::shared_ptr<ActiveShard>> admitted = Admit(*request);
  if (!admitted.ok()) return ToGrpcStatus(admitted.status());
  std::shared_ptr<ActiveShard> shard = *admitted;
  PublishMemoryMetrics();
  absl::Status status;
  {
    CancellationWatcher watcher(context, mailbox_, request->request_id());
    status = RunAdmittedShard(*request, *shard, watcher.cancelled_flag(), writer);
    if (!status.ok() && watcher.cancelled()) status = absl::CancelledError("request cancelled");
  }
  Release(request->request_id());
  return ToGrpcStatus(status);
}

absl::Status WorkerService::RunAdmittedShard(const RunShardRequest& r, ActiveShard& shard,
                                             const std::atomic<bool>& cancelled,
                                             grpc::ServerWriter<RunShardEvent>* writer) {
  const ModelConfig& config = engine_.config();
  const int shards = r.shards_size();
  const bool last = r.rank() == shards - 1;
  const std::chrono::milliseconds timeout(r.peer_timeout_ms() > 0 ? r.peer_timeout_ms() : 10000);

  std::vector<std::string> addresses;
  ShardContext ctx;
  for (const auto& s : r.shards()) {
    addresses.push_back(s.address());
    ctx.shard_bounds.push_back(s.token_begin());
  }
  ctx.shard_bounds.push_back(r.shards(shards - 1).token_end());
  GrpcPeerGroup grpc_peers(stubs_, mailbox_, r.request_id(), r.rank(), addresses, timeout, options_.metrics);
  if (shards > 1) ctx.peers = &grpc_peers;
#ifdef TESSERA_HAVE_NCCL
  std::unique_ptr<NcclPeerGroup> nccl_peers;
  if (r.has_nccl() && shards > 1) {
    if (options_.nccl_groups == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("worker ", options_.advertised_address,
                                                        " was sent an NCCL group but does not offer NCCL"));
    }
    ASSIGN_OR_RETURN(std::shared_ptr<NcclCommunicator> comm,
                     options_.nccl_groups->GetOrJoin(r.nccl().group_id(), r.nccl().unique_id(), shards, r.rank(),
                                                     timeout, &cancelled));
    nccl_peers = std::make_unique<NcclPeerGroup>(std::move(comm), timeout, &cancelled);
    ctx.peers = nccl_peers.get();
  }
#else
  if (r.has_nccl() && shards > 1) {
    return absl::FailedPreconditionError(absl::StrCat("worker ", options_.advertised_address,
                                                      " was built without NCCL but was sent an NCCL group"));
  }
#endif

  auto last_progress = std::chrono::steady_clock::now();
  ctx.on_block_done = [&](int64_t done, int64_t total) -> absl::Status {
    if (cancelled.load()) return absl::CancelledError("request cancelled");
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_progress < kProgressInterval) return absl::OkStatus();
    last_progress = now;
    RunShardEvent event;
    event.mutable_progress()->set_layers_done(static_cast<int32_t>(done));
    event.mutable_progress()->set_layers_total(static_cast<int32_t>(total));
    event.mutable_progress()->set_prompt_tokens(r.token_ids_size());
    event.mutable_progress()->set_shards(shards);
    return Write(writer, event);
  };

  const LogitsRows rows = r.return_logits() ? LogitsRows::kAll : last ? LogitsRows::kLast : LogitsRows::kNone;
  std::vector<float> logits;
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    const auto start = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(logits, engine_.Forward(*shard.state, r.token_ids(), rows, ctx));
    if (options_.metrics != nullptr) {
      options_.metrics->prefill_step_seconds.Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
#ifdef TESSERA_HAVE_NCCL
    if (nccl_peers != nullptr && options_.metrics != nullptr) {
      options_.metrics->peer_nccl_bytes.Increment(static_cast<double>(nccl_peers->bytes_sent()));
    }
#endif
    if (!last) shard.state->DropMambaStates();  // only the last shard decodes: the others keep K/V alone
    shard.actual_bytes.store(shard.state->MemoryBytes());
  }
  PublishMemoryMetrics();
  if (r.return_logits()) {
    RunShardEvent event;
    *event.mutable_prompt_logits() = ToLogits(logits, config.vocab_size);
    RETURN_IF_ERROR(Write(writer, event));
  }
  RunShardEvent prefilled;
  prefilled.mutable_prefilled()->set_memory_bytes(shard.actual_bytes.load());
  RETURN_IF_ERROR(Write(writer, prefilled));

  if (!last) {
    while (!cancelled.load()) std::this_thread::sleep_for(kCancelPoll);
    return absl::OkStatus();  // the coordinator ended the request: free its K/V
  }
  const std::vector<float> last_row(logits.end() - config.vocab_size, logits.end());
  return Decode(r, shard, last_row, cancelled, writer);
}

absl::Status WorkerService::Decode(const RunShardRequest& r, ActiveShard& shard, std::vector<float> logits,
                                   const std::atomic<bool>& cancelled, grpc::ServerWriter<RunShardEvent>* writer) {
  const ModelConfig& config = engine_.config();
  const std::chrono::milliseconds timeout(r.peer_timeout_ms() > 0 ? r.peer_timeout_ms() : 10000);
  std::vector<std::string> holders;
  for (int i = 0; i + 1 < r.shards_size(); ++i) holders.push_back(r.shards(i).address());
  GrpcRemoteKv remote(stubs_, r.request_id(), holders, timeout, options_.metrics);
  ShardContext ctx;
  if (!holders.empty()) ctx.remote_kv = &remote;

  SamplingConfig sampling;
  sampling.temperature = r.sampling().temperature();
  sampling.top_k = r.sampling().top_k();
  sampling.top_p = r.sampling().top_p() > 0 ? r.sampling().top_p() : 1.0f;
  sampling.seed = r.sampling().seed();
  Sampler sampler(sampling);
  const int max_new_tokens = r.stopping().max_new_tokens();

  tessera::v1::FinishReason reason = tessera::v1::FINISH_REASON_LENGTH;
  int generated = 0;
  while (true) {
    if (cancelled.load()) return absl::CancelledError("request cancelled");
    const int32_t token = sampler.Sample(logits);
    ++generated;
    RunShardEvent event;
    event.mutable_tokens()->add_token_ids(token);
    if (r.return_logits()) *event.mutable_tokens()->mutable_logits() = ToLogits(logits, config.vocab_size);
    RETURN_IF_ERROR(Write(writer, event));
    if (IsStopToken(r, token)) {
      reason = tessera::v1::FINISH_REASON_STOP_TOKEN;
      break;
    }
    if (r.eos_token_id() >= 0 && token == r.eos_token_id()) {
      reason = tessera::v1::FINISH_REASON_EOS;
      break;
    }
    if (generated >= max_new_tokens) break;
    std::lock_guard<std::mutex> lock(shard.mu);
    const int32_t next[1] = {token};
    const auto start = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(logits, engine_.Forward(*shard.state, next, LogitsRows::kLast, ctx));
    if (options_.metrics != nullptr) {
      options_.metrics->decode_step_seconds.Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    shard.actual_bytes.store(shard.state->MemoryBytes());
  }
  RunShardEvent finished;
  finished.mutable_finished()->set_finish_reason(reason);
  finished.mutable_finished()->set_completion_tokens(generated);
  return Write(writer, finished);
}

}  // namespace tessera
