// The coordinator's logic: validate a request (tokenizing a text prompt
// first), admit it (plan shards, reserve memory), run it on the workers (over
// NCCL when they offer it: nccl_groups.h) and relay the result with its text;
// describe the model and the cluster; keep the metrics. Its API is plain C++
// (generate_types.h) and absl::Status: the public API's messages and
// ServerContext stay in the gRPC service that adapts it, so its callers say
// how to notice a client going away.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/admission_queue.h"
#include "coordinator/coordinator_options.h"
#include "coordinator/generate_events.h"
#include "coordinator/generate_types.h"
#include "coordinator/nccl_groups.h"
#include "coordinator/prefix_directory.h"
#include "coordinator/served_model.h"
#include "coordinator/worker_registry.h"

namespace tessera {

class MeteredRequest;

// A text prompt is refused unread past this many bytes per token of context
// (a generous bound: real text averages 3 to 5 bytes per token)...
inline constexpr int64_t kMaxPromptBytesPerToken = 32;
// ...and past this many bytes in any case.
inline constexpr int64_t kMaxPromptTextBytes = int64_t{64} << 20;

// How a running request learns that its caller gave up.
struct CallerContext {
  std::function<bool()> cancelled = [] { return false; };
  std::chrono::system_clock::time_point deadline = std::chrono::system_clock::time_point::max();
};

class Coordinator {
 public:
  Coordinator(ServedModel model, const CoordinatorOptions& options);
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;
  ~Coordinator();

  void StartHealthChecks() { registry_.StartHealthChecks(); }
  // Ends running requests (UNAVAILABLE) and refuses new ones; stops health checks.
  void BeginShutdown();
  // Waits until no request runs; false when some still do after `timeout`.
  bool WaitForRequestsToEnd(absl::Duration timeout) const;

  // Adds or refreshes the worker at `address` (HOST:PORT); returns the
  // number of ready workers. INVALID_ARGUMENT for an empty address.
  absl::StatusOr<int> RegisterWorker(const std::string& address);

  // Runs one request from arrival to end: validation, admission (waiting in
  // line when the cluster is full and options allow), execution. Progress
  // and tokens go to `events` as they happen; the result has every token and
  // the whole text.
  absl::StatusOr<GenerateResult> Generate(const GenerateRequest& request, const CallerContext& caller,
                                          GenerateEvents& events);
  // The request as Generate would run it, or why it never could: the prompt
  // tokenized, max_new_tokens resolved, every field validated. Generate
  // does the same first; callers that must answer before a request starts
  // (the HTTP front's streams) call it to report errors in their own form.
  absl::StatusOr<GenerateRequest> PrepareRequest(const GenerateRequest& request) const;
  // Ends every running or waiting request with this (client) id: each ends
  // OK with FinishReason::kAborted. Returns how many; NOT_FOUND when none.
  absl::StatusOr<int> Abort(const std::string& request_id);
  // Every ready worker drops its prefix cache (worker.proto
  // DropPrefixCache); the coordinator forgets where prefixes were. Returns
  // the bytes freed and how many workers answered; UNAVAILABLE when some
  // ready worker did not (the others dropped theirs).
  absl::StatusOr<std::pair<int64_t, int>> DropPrefixCache();
  // FAILED_PRECONDITION when the model has no tokenizer.
  absl::StatusOr<std::vector<int32_t>> Tokenize(const TokenizeRequest& request) const;
  absl::StatusOr<std::string> Detokenize(const DetokenizeRequest& request) const;
  ModelInfo GetModelInfo() const;
  ServerInfo GetServerInfo() const;

  WorkerRegistry& registry() { return registry_; }
  const ServedModel& model() const { return model_; }

 private:
  // A request's abort flag, filed under its client id while it lives.
  struct AbortFlag {
    std::atomic<bool> aborted{false};
  };
  class AbortRegistration;

  absl::StatusOr<GenerateResult> RunGenerate(const GenerateRequest& request, const CallerContext& caller,
                                             MeteredRequest& metered);
  // One run of an admitted request under a fresh id (`worker_request_id`,
  // or a new one when empty) and secret; the workers it lost go to `lost`.
  // `early_finish` ends it OK before the workers do (stop string, abort).
  absl::StatusOr<GenerateResult> RunAttempt(const Admission& admission, const GenerateRequest& request,
                                            const CallerContext& caller, std::string worker_request_id,
                                            const std::string& client_request_id, GenerateEvents& events,
                                            const std::function<std::optional<FinishReason>()>& early_finish,
                                            std::vector<std::string>& lost, bool& tokens_relayed);
  // INVALID_ARGUMENT when a prompt's text is longer than MaxPromptTextBytes
  // or not UTF-8 (naming the byte offset): checked before tokenizing.
  absl::Status CheckPromptText(absl::string_view field, const std::string& text) const;
  // kMaxPromptBytesPerToken per token of the served context (else of what
  // the ready workers hold), at most kMaxPromptTextBytes.
  int64_t MaxPromptTextBytes() const;
  // The request with prompt_text replaced by its token ids.
  absl::StatusOr<GenerateRequest> TokenizePrompt(const GenerateRequest& request) const;
  absl::StatusOr<const Tokenizer*> RequireTokenizer() const;
  // The ready workers' prefix block (WorkerStatus.prefix_block_tokens; the
  // first one's: a cluster serves one configuration); 0: no reuse.
  int64_t PrefixBlockTokens() const;
  // Sets the cluster gauges (ready workers, context) from the registry.
  void RefreshClusterGauges();

  const ServedModel model_;
  const CoordinatorOptions options_;
  AdmissionQueue queue_;
  mutable absl::Mutex aborts_mu_;
  std::multimap<std::string, std::shared_ptr<AbortFlag>> aborts_ ABSL_GUARDED_BY(aborts_mu_);  // by client id
  absl::Mutex gauges_mu_;  // one refresh at a time, so the last one set is the newest
  NcclGroups nccl_groups_;  // before the registry, which tells it about workers that leave
  WorkerRegistry registry_;
  PrefixDirectory prefixes_;  // which worker holds which prompt blocks (a routing hint)
  std::atomic<bool> shutting_down_{false};
  std::atomic<int32_t> running_requests_{0};
};

}  // namespace tessera
