// One Generate request's life as the coordinator's metrics see it: it waits
// from arrival until admission, then runs until it ends. It sits between the
// relay and the caller's GenerateEvents, so token times are the times tokens
// leave for the client:
//   - time to first token: arrival to the first delta with tokens;
//   - inter-token latency: the gap before a delta, shared evenly by its
//     tokens (a request of n tokens gives n - 1 observations);
//   - prompt tokens are counted when the first token shows the prefill done,
//     generated tokens as they are relayed;
//   - End records the request once: finish_reason from the response, or
//     rejected (never admitted), cancelled (client gone or its deadline
//     passed), error (anything else after admission); durations only for
//     admitted requests.
// With no metrics (not served) it only forwards.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/generate_events.h"
#include "coordinator/generate_types.h"

namespace tessera {

class MeteredRequest final : public GenerateEvents {
 public:
  // Arrival: the request counts as waiting. `metrics` may be null.
  MeteredRequest(CoordinatorMetrics* metrics, GenerateEvents& inner);
  MeteredRequest(const MeteredRequest&) = delete;
  MeteredRequest& operator=(const MeteredRequest&) = delete;
  ~MeteredRequest() override;  // End(internal error) when End was never called

  // Shards placed and memory reserved: waiting -> running.
  void Admitted(int64_t prompt_tokens);
  // How the request ended; `finish_reason` matters when `status` is OK. Once.
  void End(const absl::Status& status, FinishReason finish_reason);

  void OnStart(const std::string& request_id) override { inner_.OnStart(request_id); }
  bool OnProgress(const PrefillProgress& progress) override { return inner_.OnProgress(progress); }
  bool OnTokens(const TokenDelta& tokens) override;

 private:
  prometheus::Counter& EndCounter(const absl::Status& status, FinishReason finish_reason) const;

  CoordinatorMetrics* const metrics_;
  GenerateEvents& inner_;
  const absl::Time arrived_;
  int64_t prompt_tokens_ = 0;
  bool admitted_ = false;
  bool ended_ = false;
  bool first_token_seen_ = false;
  absl::Time last_token_at_;
};

}  // namespace tessera
