// Validation first (no locks, no network; a text prompt is tokenized and
// then validated as ids), then admission, then execution; the admission
// object returns its reservations however execution ends. Every request is
// metered from arrival to end, whatever path it takes out. A request that
// loses a worker (UNAVAILABLE) before any token reached its client runs once
// more, under a new id and secret, without the workers it lost.
#include "coordinator/coordinator.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <cstdio>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/metered_request.h"
#include "coordinator/request_ids.h"
#include "coordinator/request_validation.h"
#include "coordinator/shard_execution.h"
#include "coordinator/text_deltas.h"
#include "coordinator/tokenizer/utf8.h"
#include "coordinator/worker_capacity.h"
#include "rpc/metrics_endpoint.h"  // kTesseraVersion
#include "tessera/v1/worker.grpc.pb.h"

namespace tessera {
namespace {

// Counts a request as running for as long as it lives.
class RunningRequest {
 public:
  explicit RunningRequest(std::atomic<int32_t>& counter) : counter_(counter) { ++counter_; }
  RunningRequest(const RunningRequest&) = delete;
  RunningRequest& operator=(const RunningRequest&) = delete;
  ~RunningRequest() { --counter_; }

 private:
  std::atomic<int32_t>& counter_;
};

// The client's view of a request that may be tried twice: it starts once,
// and its prefill progress never goes back.
class AttemptEvents final : public GenerateEvents {
 public:
  explicit AttemptEvents(GenerateEvents& inner) : inner_(inner) {}

  void OnStart(const std::string& request_id) override {
    if (!started_) inner_.OnStart(request_id);
    started_ = true;
  }
  bool OnProgress(const PrefillProgress& progress) override {
    if (progress.layers_total == last_.layers_total && progress.layers_done <= last_.layers_done) return true;
    last_ = progress;
    return inner_.OnProgress(progress);
  }
  bool OnTokens(const TokenDelta& tokens) override { return inner_.OnTokens(tokens); }

 private:
  GenerateEvents& inner_;
  bool started_ = false;
  PrefillProgress last_{-1, -1, 0, 0};
};

// What a request ended by Abort before it was admitted returns.
GenerateResult AbortedBeforeAdmission(const GenerateRequest& request, const std::string& client_request_id) {
  GenerateResult result;
  result.request_id = client_request_id;
  result.finish_reason = FinishReason::kAborted;
  result.usage.prompt_tokens = static_cast<int32_t>(request.prompt_token_ids.size());
  result.usage.total_tokens = result.usage.prompt_tokens;
  return result;
}

}  // namespace

// Files a request's abort flag under its client id for as long as it lives.
class Coordinator::AbortRegistration {
 public:
  AbortRegistration(Coordinator& coordinator, const std::string& client_request_id)
      : coordinator_(coordinator), flag_(std::make_shared<AbortFlag>()) {
    absl::MutexLock lock(&coordinator_.aborts_mu_);
    entry_ = coordinator_.aborts_.emplace(client_request_id, flag_);
  }
  AbortRegistration(const AbortRegistration&) = delete;
  AbortRegistration& operator=(const AbortRegistration&) = delete;
  ~AbortRegistration() {
    absl::MutexLock lock(&coordinator_.aborts_mu_);
    coordinator_.aborts_.erase(entry_);
  }

  bool aborted() const { return flag_->aborted.load(); }

 private:
  Coordinator& coordinator_;
  std::shared_ptr<AbortFlag> flag_;
  std::multimap<std::string, std::shared_ptr<AbortFlag>>::iterator entry_;
};

Coordinator::Coordinator(ServedModel model, const CoordinatorOptions& options)
    : model_(std::move(model)),
      options_(options),
      queue_(options.max_queued_requests, options.queue_timeout, options.cancel_poll_interval),
      nccl_groups_(options),
      registry_(options, model_.vocab_size) {
  registry_.SetLeftListener([this](const std::string& address) {
    nccl_groups_.DropWorker(address);
    prefixes_.Forget(address);  // a worker that comes back has an empty cache
  });
  // Room may have freed (or a worker come back): the head of the line tries again.
  registry_.SetChangeListener([this] {
    RefreshClusterGauges();
    queue_.Notify();
  });
  RefreshClusterGauges();
}

Coordinator::~Coordinator() { registry_.StopHealthChecks(); }

void Coordinator::BeginShutdown() {
  shutting_down_ = true;
  registry_.StopHealthChecks();
}

bool Coordinator::WaitForRequestsToEnd(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (running_requests_ > 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

absl::StatusOr<int> Coordinator::RegisterWorker(const std::string& address) {
  if (address.empty()) return absl::InvalidArgumentError("address must be HOST:PORT. Given: an empty string");
  return registry_.Register(address);
}

absl::StatusOr<GenerateResult> Coordinator::Generate(const GenerateRequest& request, const CallerContext& caller,
                                                     GenerateEvents& events) {
  MeteredRequest metered(options_.metrics, events);
  absl::StatusOr<GenerateResult> result = RunGenerate(request, caller, metered);
  metered.End(result.status(), result.ok() ? result->finish_reason : FinishReason::kUnspecified);
  return result;
}

absl::StatusOr<GenerateRequest> Coordinator::PrepareRequest(const GenerateRequest& original) const {
  RETURN_IF_ERROR(ValidatePromptForm(original));
  GenerateRequest request;
  if (!original.prompt_text.empty()) {
    ASSIGN_OR_RETURN(request, TokenizePrompt(original));
  } else {
    request = original;
  }
  GenerateLimits limits;
  limits.vocab_size = model_.vocab_size;
  limits.max_new_tokens_limit = options_.max_new_tokens_limit;
  limits.max_context_tokens = model_.max_context_tokens;
  limits.default_max_new_tokens = options_.default_max_new_tokens;
  limits.has_tokenizer = model_.tokenizer != nullptr;
  if (request.stopping.max_new_tokens == 0) {
    // Without a served context, 0 means up to what the cluster holds for one request.
    GenerateLimits resolution = limits;
    if (resolution.max_context_tokens <= 0) resolution.max_context_tokens = GetModelInfo().context_capacity_tokens;
    RETURN_IF_ERROR(ResolveMaxNewTokens(request, resolution));
  }
  RETURN_IF_ERROR(ValidateGenerateRequest(request, limits));
  return request;
}

absl::StatusOr<int> Coordinator::Abort(const std::string& request_id) {
  if (request_id.empty()) return absl::InvalidArgumentError("request_id must not be empty");
  int aborted = 0;
  {
    absl::MutexLock lock(&aborts_mu_);
    auto [begin, end] = aborts_.equal_range(request_id);
    for (auto it = begin; it != end; ++it) aborted += it->second->aborted.exchange(true) ? 0 : 1;
  }
  if (aborted == 0) {
    return absl::NotFoundError(absl::StrCat("no running or waiting request has request_id '", request_id, "'"));
  }
  queue_.Notify();  // waiters notice at once
  return aborted;
}

absl::StatusOr<GenerateResult> Coordinator::RunGenerate(const GenerateRequest& original, const CallerContext& caller,
                                                        MeteredRequest& metered) {
  if (shutting_down_) return absl::UnavailableError("the coordinator is shutting down");
  ASSIGN_OR_RETURN(const GenerateRequest request, PrepareRequest(original));

  const int64_t prompt_tokens = static_cast<int64_t>(request.prompt_token_ids.size());
  // Ids are random (unguessable, never repeated across restarts); the
  // caller's own id is only echoed back.
  ASSIGN_OR_RETURN(const std::string first_id, NewRequestId());
  const std::string client_request_id = request.request_id.empty() ? first_id : request.request_id;
  AbortRegistration abort(*this, client_request_id);
  TextDeltaEvents text(model_.tokenizer.get(), request.keep_special_tokens, request.stopping, metered);
  AttemptEvents attempt_events(text);
  const std::function<std::optional<FinishReason>()> early_finish = [&]() -> std::optional<FinishReason> {
    if (abort.aborted()) return FinishReason::kAborted;
    if (text.stopped()) return FinishReason::kStopString;
    return std::nullopt;
  };
  const std::function<absl::Status()> give_up = [&]() -> absl::Status {
    if (shutting_down_) return absl::UnavailableError("the coordinator is shutting down");
    if (abort.aborted()) return absl::AbortedError("aborted while waiting for room");
    if (caller.cancelled()) return absl::CancelledError("the client cancelled the request");
    if (std::chrono::system_clock::now() >= caller.deadline) {
      return absl::DeadlineExceededError("the deadline passed while the request waited for room");
    }
    return absl::OkStatus();
  };
  // Prefix reuse: the worker that was last given the longest run of this
  // prompt's blocks takes it whole when it has room (a hint: the worker
  // finds what it still holds itself).
  const int64_t prefix_block = request.bypass_prefix_cache || request.sampling.prompt_logprobs.has_value()
                                   ? 0
                                   : PrefixBlockTokens();
  const PrefixHint prefix = prefixes_.Longest(request.cache_salt, request.prompt_token_ids, prefix_block);
  // Zigzag balances a long prompt's attention over its workers, but leaves
  // no span a later prompt could resume from: by default only for prompts
  // that keep nothing for reuse, of a model with attention layers.
  const bool zigzag = options_.shard_layout == ShardLayout::kZigzag ||
                      (options_.shard_layout == ShardLayout::kAuto && prefix_block == 0 && model_.has_attention &&
                       prompt_tokens >= options_.zigzag_min_tokens);
  std::set<std::string> excluded;  // workers lost by an earlier attempt
  std::optional<RunningRequest> running;
  absl::Status first_failure;
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<std::unique_ptr<Admission>> admission = queue_.Admit(
        request.priority,
        [&]() -> absl::StatusOr<std::unique_ptr<Admission>> {
          // The longer of the two reuses: a multi-shard plan's kept spans, resumed on their workers,
          // or one worker's blocks.
          if (attempt == 0 && prefix.segments.size() > 0 && prefix.segments.back().end > prefix.tokens) {
            absl::StatusOr<std::unique_ptr<Admission>> resumed =
                registry_.AdmitResumed(prompt_tokens, request.stopping.max_new_tokens, prefix.segments, excluded);
            if (resumed.ok()) return resumed;
          }
          return registry_.Admit(prompt_tokens, request.stopping.max_new_tokens, excluded,
                                 excluded.count(prefix.address) > 0 ? std::string() : prefix.address, prefix_block,
                                 zigzag);
        },
        give_up);
    if (!admission.ok() && abort.aborted()) return AbortedBeforeAdmission(request, client_request_id);
    if (!admission.ok()) return attempt == 0 ? admission.status() : first_failure;
    if (prefix_block > 0 && (*admission)->resume_from() == 0) {
      const std::vector<ShardLease>& shards = (*admission)->shards();
      if (shards.size() == 1) {  // one worker keeps every block
        prefixes_.Record(request.cache_salt, request.prompt_token_ids, prefix_block, shards[0].address);
      } else if (IsContiguous(shards)) {  // each worker keeps its span (a zigzag plan or one in rounds keeps none)
        std::vector<SegmentHint> spans;
        for (const ShardLease& s : shards) spans.push_back({s.address, s.token_begin, s.token_end});
        prefixes_.RecordSegments(request.cache_salt, request.prompt_token_ids, prefix_block, spans);
      }
    }
    if (attempt == 0) {
      running.emplace(running_requests_);
      metered.Admitted(prompt_tokens);
    }
    std::vector<std::string> lost;
    bool tokens_relayed = false;
    absl::StatusOr<GenerateResult> result =
        RunAttempt(**admission, request, caller, attempt == 0 ? first_id : std::string(), client_request_id,
                   attempt_events, early_finish, lost, tokens_relayed);
    // One transparent retry, on other workers, of a request that failed
    // because a worker was lost (or a peer channel was reconnecting) before
    // any token reached the client.
    // A resumed plan whose workers no longer hold their parts is planned again, from scratch.
    const bool evicted = (*admission)->resume_from() > 0 && !result.ok() &&
                         result.status().code() == absl::StatusCode::kFailedPrecondition;
    const bool retry = attempt == 0 && !result.ok() &&
                       ((result.status().code() == absl::StatusCode::kUnavailable && !lost.empty()) || evicted) &&
                       !tokens_relayed && !shutting_down_ && !caller.cancelled() && !abort.aborted();
    if (!retry) {
      if (!result.ok()) return result.status();
      if (!text.Finish()) return absl::CancelledError("the client went away");
      result->text = text.text();
      // The held-back tail may complete a stop string only when generation ended.
      if (text.stopped() && result->finish_reason != FinishReason::kAborted) {
        result->finish_reason = FinishReason::kStopString;
      }
      return result;
    }
    first_failure = result.status();
    excluded.insert(lost.begin(), lost.end());
    const std::string how = lost.empty() ? std::string("planned from scratch (its prefix was evicted)")
                                         : absl::StrCat("without ", absl::StrJoin(lost, ", "));
    std::fprintf(stderr, "coordinator: request %s failed before its first token (%s); retrying %s\n",
                 client_request_id.c_str(), std::string(first_failure.message()).c_str(), how.c_str());
  }
}

absl::StatusOr<GenerateResult> Coordinator::RunAttempt(const Admission& admission, const GenerateRequest& request,
                                                       const CallerContext& caller, std::string worker_request_id,
                                                       const std::string& client_request_id, GenerateEvents& events,
                                                       const std::function<std::optional<FinishReason>()>& early_finish,
                                                       std::vector<std::string>& lost, bool& tokens_relayed) {
  ShardExecution execution;
  if (worker_request_id.empty()) {
    ASSIGN_OR_RETURN(worker_request_id, NewRequestId());
  }
  execution.worker_request_id = std::move(worker_request_id);
  ASSIGN_OR_RETURN(execution.request_secret, NewRequestSecret());
  execution.client_request_id = client_request_id;
  execution.vocab_size = model_.vocab_size;
  const int64_t eos = model_.eos_token_id >= 0 ? model_.eos_token_id : admission.eos_token_id();
  execution.eos_token_id = request.stopping.ignore_eos ? -1 : eos;
  execution.peer_timeout_ms = options_.peer_timeout_ms;
  execution.deadline = caller.deadline;
  execution.poll_interval = options_.cancel_poll_interval;
  execution.interruption = [this, &caller]() -> absl::Status {
    if (shutting_down_) return absl::UnavailableError("the coordinator is shutting down");
    if (caller.cancelled()) return absl::CancelledError("the client cancelled the request");
    return absl::OkStatus();
  };
  execution.early_finish = early_finish;
  execution.on_worker_unreachable = [this, &lost](const std::string& address) {
    lost.push_back(address);
    registry_.MarkUnreachable(address);
  };
  const bool resumed = admission.resume_from() > 0;  // no exchanges; split-KV queries over gRPC
  execution.resume_from = admission.resume_from();
  execution.send_prefix_tokens = !request.bypass_prefix_cache && admission.shards().size() > 1 &&
                                 PrefixBlockTokens() > 0 && IsContiguous(admission.shards());
  ASSIGN_OR_RETURN(bool use_nccl, UseNccl(options_.peer_transport, admission.shards()));
  use_nccl = use_nccl && !resumed;
  std::unique_ptr<NcclPrefillTurn> nccl_turn;  // held from before the RunShard calls until prefill ends
  if (use_nccl) {
    ASSIGN_OR_RETURN(nccl_turn, nccl_groups_.BeginPrefill(admission.shards(), execution));
    execution.nccl = nccl_turn->group();
    execution.on_prefill_end = [&nccl_turn](const absl::Status& prefill) { nccl_turn->End(prefill); };
  }
  return ExecuteShards(admission.shards(), request, execution, events, &tokens_relayed);
}

absl::Status Coordinator::CheckPromptText(absl::string_view field, const std::string& text) const {
  const int64_t max_bytes = MaxPromptTextBytes();
  if (static_cast<int64_t>(text.size()) > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be <= ", max_bytes, " bytes (", kMaxPromptBytesPerToken,
        " bytes per token of the served context). Given: ", text.size(), " bytes"));
  }
  const size_t invalid = Utf8FirstInvalid(text);
  if (invalid < text.size()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be valid UTF-8. Given: an invalid byte 0x",
                                                   absl::Hex(static_cast<unsigned char>(text[invalid]),
                                                             absl::kZeroPad2),
                                                   " at byte offset ", invalid));
  }
  return absl::OkStatus();
}

int64_t Coordinator::MaxPromptTextBytes() const {
  int64_t context = model_.max_context_tokens;
  if (context <= 0) {  // no served limit: what the ready workers can hold
    for (const WorkerView& worker : registry_.Workers()) {
      if (worker.ready) context = SaturatingAdd(context, worker.capacity_tokens);
    }
  }
  return std::min(SaturatingMul(std::max<int64_t>(context, 1), kMaxPromptBytesPerToken), kMaxPromptTextBytes);
}

absl::StatusOr<const Tokenizer*> Coordinator::RequireTokenizer() const {
  if (model_.tokenizer == nullptr) {
    return absl::FailedPreconditionError("this server has no tokenizer (start the coordinator with --tokenizer)");
  }
  return model_.tokenizer.get();
}

absl::StatusOr<GenerateRequest> Coordinator::TokenizePrompt(const GenerateRequest& request) const {
  ASSIGN_OR_RETURN(const Tokenizer* tokenizer, RequireTokenizer());
  RETURN_IF_ERROR(CheckPromptText("prompt_text", request.prompt_text));
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(request.prompt_text, request.add_special_tokens);
  if (!ids.ok()) return absl::Status(ids.status().code(), absl::StrCat("prompt_text: ", ids.status().message()));
  if (ids->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("prompt_text must encode to at least 1 token. Given: ",
                                                   request.prompt_text.size(), " bytes that encode to 0 tokens"));
  }
  GenerateRequest tokenized = request;
  tokenized.prompt_text.clear();
  tokenized.prompt_token_ids = *std::move(ids);
  return tokenized;
}

absl::StatusOr<std::vector<int32_t>> Coordinator::Tokenize(const TokenizeRequest& request) const {
  ASSIGN_OR_RETURN(const Tokenizer* tokenizer, RequireTokenizer());
  RETURN_IF_ERROR(CheckPromptText("text", request.text));
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(request.text, request.add_special_tokens);
  if (!ids.ok()) return absl::Status(ids.status().code(), absl::StrCat("text: ", ids.status().message()));
  return ids;
}

absl::StatusOr<std::string> Coordinator::Detokenize(const DetokenizeRequest& request) const {
  ASSIGN_OR_RETURN(const Tokenizer* tokenizer, RequireTokenizer());
  absl::StatusOr<std::string> text = tokenizer->Decode(request.token_ids, !request.keep_special_tokens);
  if (!text.ok()) return absl::Status(text.status().code(), absl::StrCat("token_ids: ", text.status().message()));
  return text;
}

void Coordinator::RefreshClusterGauges() {
  if (options_.metrics == nullptr) return;
  absl::MutexLock lock(&gauges_mu_);
  const ModelInfo info = GetModelInfo();
  options_.metrics->workers_ready.Set(info.workers_ready);
  options_.metrics->context_capacity_tokens.Set(static_cast<double>(info.context_capacity_tokens));
  options_.metrics->context_available_tokens.Set(static_cast<double>(info.context_available_tokens));
}

ModelInfo Coordinator::GetModelInfo() const {
  ModelInfo info;
  info.model_type = model_.model_type;
  info.model_path = model_.model_path;
  info.vocab_size = static_cast<int32_t>(model_.vocab_size);
  info.num_layers = static_cast<int32_t>(model_.num_layers);
  int64_t capacity = 0, available = 0;
  int32_t ready = 0;
  for (const WorkerView& worker : registry_.Workers()) {
    if (!worker.ready) continue;
    ++ready;
    capacity = SaturatingAdd(capacity, worker.capacity_tokens);
    available = SaturatingAdd(available, worker.free_tokens);
  }
  if (model_.max_context_tokens > 0) {
    capacity = std::min(capacity, model_.max_context_tokens);
    available = std::min(available, model_.max_context_tokens);
  }
  info.context_capacity_tokens = capacity;
  info.context_available_tokens = available;
  info.workers_ready = ready;
  info.max_new_tokens_limit = options_.max_new_tokens_limit;
  info.eos_token_id = model_.eos_token_id;
  info.tokenizer_path = model_.tokenizer_path;
  info.max_context_tokens = model_.max_context_tokens;
  info.trained_context_tokens = model_.trained_context_tokens;
  info.default_max_new_tokens = options_.default_max_new_tokens;
  return info;
}

ServerInfo Coordinator::GetServerInfo() const {
  ServerInfo info;
  info.version = kTesseraVersion;
  info.backend = "cpu";
  for (const WorkerView& worker : registry_.Workers()) {
    WorkerInfo& w = info.workers.emplace_back();
    w.address = worker.address;
    w.ready = worker.ready;
    w.capacity_tokens = worker.capacity_tokens;
    w.memory_used_bytes = std::max(worker.held_bytes, worker.status.memory_used_bytes());
    w.memory_budget_bytes = worker.status.memory_budget_bytes();
    w.active_requests = std::max(worker.running_shards, worker.status.active_requests());
    w.metrics_address = worker.status.metrics_address();
    w.backend = worker.status.backend();
    w.peer_transports.assign(worker.status.peer_transports().begin(), worker.status.peer_transports().end());
    w.not_ready_reason = worker.not_ready_reason;
  }
  info.running_requests = running_requests_;
  info.queued_requests = queue_.waiting();
  info.metrics_address = options_.metrics_address;
  info.peer_transport = std::string(PeerTransportModeName(options_.peer_transport));
  info.nccl_groups = nccl_groups_.size();
  return info;
}

int64_t Coordinator::PrefixBlockTokens() const {
  for (const WorkerView& w : registry_.Workers()) {
    if (w.ready) return std::max<int64_t>(0, w.status.prefix_block_tokens());
  }
  return 0;
}

// One call per worker, in turn: dropping is rare and each answers at once
// (freeing memory is all it does).
constexpr absl::Duration kDropPrefixCacheDeadline = absl::Seconds(10);

absl::StatusOr<std::pair<int64_t, int>> Coordinator::DropPrefixCache() {
  prefixes_.Forget("");
  int64_t freed = 0;
  int answered = 0;
  std::vector<std::string> failed;
  for (const auto& [address, stub] : registry_.ReadyStubs()) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kDropPrefixCacheDeadline));
    v1::DropPrefixCacheResponse response;
    const grpc::Status status = stub->DropPrefixCache(&context, v1::DropPrefixCacheRequest(), &response);
    if (!status.ok()) {
      failed.push_back(absl::StrCat(address, " (", status.error_message(), ")"));
      continue;
    }
    freed += std::max<int64_t>(0, response.freed_bytes());
    ++answered;
  }
  if (!failed.empty()) {
    return absl::UnavailableError(absl::StrCat("workers that did not drop their prefix cache: ",
                                               absl::StrJoin(failed, ", ")));
  }
  return std::make_pair(freed, answered);
}

}  // namespace tessera
