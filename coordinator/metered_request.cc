// Gauges move in pairs (waiting -> running -> gone) so they never drift,
// whichever way a request ends.
#include "coordinator/metered_request.h"

#include "absl/time/clock.h"

namespace tessera {

MeteredRequest::MeteredRequest(CoordinatorMetrics* metrics, GenerateEvents& inner)
    : metrics_(metrics), inner_(inner), arrived_(absl::Now()) {
  if (metrics_ != nullptr) metrics_->requests_waiting.Increment();
}

MeteredRequest::~MeteredRequest() {
  if (!ended_) End(absl::InternalError("the request ended unrecorded"), FinishReason::kUnspecified);
}

void MeteredRequest::Admitted(int64_t prompt_tokens) {
  if (admitted_) return;
  admitted_ = true;
  prompt_tokens_ = prompt_tokens;
  if (metrics_ == nullptr) return;
  metrics_->request_queue_time_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - arrived_));
  metrics_->requests_waiting.Decrement();
  metrics_->requests_running.Increment();
}

bool MeteredRequest::OnTokens(const TokenDelta& tokens) {
  const int count = static_cast<int>(tokens.token_ids.size());
  if (metrics_ != nullptr && count > 0) {
    const absl::Time now = absl::Now();
    if (!first_token_seen_) {
      metrics_->time_to_first_token_seconds.Observe(absl::ToDoubleSeconds(now - arrived_));
      metrics_->prompt_tokens.Increment(static_cast<double>(prompt_tokens_));
      first_token_seen_ = true;
      for (int i = 1; i < count; ++i) metrics_->inter_token_latency_seconds.Observe(0);
    } else {
      const double share = absl::ToDoubleSeconds(now - last_token_at_) / count;
      for (int i = 0; i < count; ++i) metrics_->inter_token_latency_seconds.Observe(share);
    }
    last_token_at_ = now;
    metrics_->generation_tokens.Increment(count);
  }
  return inner_.OnTokens(tokens);
}

void MeteredRequest::End(const absl::Status& status, FinishReason finish_reason) {
  if (ended_) return;
  ended_ = true;
  if (metrics_ == nullptr) return;
  EndCounter(status, finish_reason).Increment();
  if (!admitted_) {
    metrics_->requests_waiting.Decrement();
    return;
  }
  metrics_->requests_running.Decrement();
  metrics_->request_duration_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - arrived_));
}

prometheus::Counter& MeteredRequest::EndCounter(const absl::Status& status, FinishReason finish_reason) const {
  if (status.ok() && finish_reason == FinishReason::kAborted) return metrics_->requests_aborted;  // waiting or running
  if (!admitted_) return metrics_->requests_rejected;
  if (absl::IsCancelled(status) || absl::IsDeadlineExceeded(status)) return metrics_->requests_cancelled;
  if (!status.ok()) return metrics_->requests_error;
  switch (finish_reason) {
    case FinishReason::kLength:
      return metrics_->requests_length;
    case FinishReason::kStopToken:
      return metrics_->requests_stop_token;
    case FinishReason::kEos:
      return metrics_->requests_eos;
    case FinishReason::kStopString:
      return metrics_->requests_stop_string;
    case FinishReason::kAborted:
      return metrics_->requests_aborted;
    case FinishReason::kUnspecified:
      break;
  }
  return metrics_->requests_error;  // OK without a reason: a worker broke the contract
}

}  // namespace tessera
