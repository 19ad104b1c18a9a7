// One loop on the handler's thread: take the next stream item (or time out
// and poll for interruption), fold it into the response, relay what the
// client should see now. Exactly one place decides how the request ends.
#include "coordinator/shard_execution.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/plan_pieces.h"
#include "coordinator/prompt_logprobs.h"
#include "coordinator/shard_streams.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/worker.grpc.pb.h"

namespace tessera {
namespace {

// The request's parameters as the workers' API spells them (the last shard samples and stops).
v1::SamplingParams WorkerSampling(const SamplingParams& sampling) {
  v1::SamplingParams out;
  out.set_temperature(sampling.temperature);
  out.set_top_k(sampling.top_k);
  out.set_top_p(sampling.top_p);
  out.set_seed(sampling.seed);
  out.set_repetition_penalty(sampling.repetition_penalty);
  out.set_presence_penalty(sampling.presence_penalty);
  out.set_frequency_penalty(sampling.frequency_penalty);
  out.set_min_p(sampling.min_p);
  for (const auto& [id, bias] : sampling.logit_bias) (*out.mutable_logit_bias())[id] = bias;
  if (sampling.logprobs) out.set_logprobs(*sampling.logprobs);
  // prompt_logprobs are computed here, from the prompt logits the workers send.
  return out;
}

bool RepetitionPenalized(const SamplingParams& sampling) {
  return sampling.repetition_penalty != 0 && sampling.repetition_penalty != 1;
}

// Logits from the workers: when the client asked for them, or to compute prompt_logprobs.
bool WorkersReturnLogits(const GenerateRequest& request) {
  return request.return_logits || request.sampling.prompt_logprobs.has_value();
}

v1::StoppingCriteria WorkerStopping(const StoppingCriteria& stopping) {
  v1::StoppingCriteria out;
  out.set_max_new_tokens(stopping.max_new_tokens);
  out.mutable_stop_token_ids()->Add(stopping.stop_token_ids.begin(), stopping.stop_token_ids.end());
  out.set_ignore_eos(stopping.ignore_eos);
  out.set_min_tokens(stopping.min_tokens);
  // Stop strings are matched here, on the text: the workers never see them.
  return out;
}

// What a worker reports, as the coordinator's types. A finish reason this
// build does not know is a worker breaking the contract: unspecified.
FinishReason FinishReasonOf(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_LENGTH:
      return FinishReason::kLength;
    case v1::FINISH_REASON_STOP_TOKEN:
      return FinishReason::kStopToken;
    case v1::FINISH_REASON_EOS:
      return FinishReason::kEos;
    // Decided by the coordinator, never by a worker.
    case v1::FINISH_REASON_STOP_STRING:
    case v1::FINISH_REASON_ABORTED:
    case v1::FINISH_REASON_UNSPECIFIED:
    case v1::FinishReason_INT_MIN_SENTINEL_DO_NOT_USE_:
    case v1::FinishReason_INT_MAX_SENTINEL_DO_NOT_USE_:
      break;
  }
  return FinishReason::kUnspecified;
}

Logits LogitsOf(const v1::Logits& logits) {
  Logits out;
  out.rows = logits.rows();
  out.vocab_size = logits.vocab_size();
  out.values.assign(logits.values().begin(), logits.values().end());
  return out;
}

TokenLogprobs TokenLogprobsOf(const v1::TokenLogprobs& logprobs) {
  TokenLogprobs out;
  out.token_id = logprobs.token_id();
  out.logprob = logprobs.logprob();
  for (const v1::TokenLogprob& top : logprobs.top()) out.top.push_back({top.token_id(), top.logprob()});
  return out;
}

TokenDelta TokenDeltaOf(const v1::TokenDelta& delta, bool keep_logits) {
  TokenDelta out;
  out.token_ids.assign(delta.token_ids().begin(), delta.token_ids().end());
  if (delta.has_logits() && keep_logits) out.logits = LogitsOf(delta.logits());
  out.text = delta.text();
  for (const v1::TokenLogprobs& logprobs : delta.logprobs()) out.logprobs.push_back(TokenLogprobsOf(logprobs));
  return out;
}

// Token i of a delta alone (its logits row and logprobs with it).
TokenDelta TokenOf(const TokenDelta& delta, size_t i) {
  TokenDelta out;
  out.token_ids = {delta.token_ids[i]};
  if (delta.logits && delta.logits->rows == static_cast<int32_t>(delta.token_ids.size())) {
    const size_t vocab = static_cast<size_t>(delta.logits->vocab_size);
    out.logits = Logits{1, delta.logits->vocab_size,
                        std::vector<float>(delta.logits->values.begin() + i * vocab,
                                           delta.logits->values.begin() + (i + 1) * vocab)};
  }
  if (i < delta.logprobs.size()) out.logprobs = {delta.logprobs[i]};
  if (i + 1 == delta.token_ids.size()) out.text = delta.text;
  return out;
}

// The plan's pieces in order of position, each with the shard that holds it
// (common/plan_pieces.h, the workers' rule too). A shard's token_ids and
// prompt logits are its pieces in order.
std::vector<StripedPiece> PiecesOf(const std::vector<ShardLease>& shards) {
  std::vector<PlanSpan> spans;  // (W)
  for (const ShardLease& s : shards) spans.push_back({s.token_begin, s.token_end, s.late_begin, s.late_end});
  return PiecesInOrder(spans, shards.empty() ? 1 : shards[0].prefill_rounds);
}

std::vector<ShardStreams::Call> MakeCalls(const std::vector<ShardLease>& shards, const GenerateRequest& request,
                                          const ShardExecution& execution) {
  std::vector<ShardStreams::Call> calls;
  const std::vector<StripedPiece> pieces = PiecesOf(shards);
  const auto prompt = request.prompt_token_ids.begin();
  for (size_t rank = 0; rank < shards.size(); ++rank) {
    const ShardLease& shard = shards[rank];
    ShardStreams::Call call;
    call.address = shard.address;
    call.stub = shard.stub;
    v1::RunShardRequest& r = call.request;
    r.set_request_id(execution.worker_request_id);
    r.set_request_secret(execution.request_secret);
    r.set_rank(static_cast<int32_t>(rank));
    for (const ShardLease& peer : shards) {
      v1::ShardPeer* p = r.add_shards();
      p->set_address(peer.address);
      p->set_token_begin(peer.token_begin);
      p->set_token_end(peer.token_end);
      p->set_late_begin(peer.late_begin);
      p->set_late_end(peer.late_end);
    }
    if (shard.prefill_rounds > 1) r.set_prefill_rounds(shard.prefill_rounds);
    // The penalty covers the whole prompt; the last shard holds only its pieces.
    const bool penalized = rank + 1 == shards.size() && RepetitionPenalized(request.sampling);
    std::vector<int32_t> others;  // penalized: the prompt tokens of the other shards
    for (const StripedPiece& p : pieces) {
      if (p.rank == static_cast<int>(rank)) {
        r.mutable_token_ids()->Add(prompt + p.begin, prompt + p.end);
      } else if (penalized) {
        others.insert(others.end(), prompt + p.begin, prompt + p.end);
      }
    }
    *r.mutable_sampling() = WorkerSampling(request.sampling);
    *r.mutable_stopping() = WorkerStopping(request.stopping);
    r.set_return_logits(WorkersReturnLogits(request));
    if (penalized) {
      std::sort(others.begin(), others.end());
      others.erase(std::unique(others.begin(), others.end()), others.end());
      r.mutable_penalty_token_ids()->Add(others.begin(), others.end());
    }
    r.set_peer_timeout_ms(execution.peer_timeout_ms);
    r.set_reserved_bytes(shard.reserved_bytes);
    r.set_eos_token_id(execution.eos_token_id);
    r.set_cache_salt(request.cache_salt);
    if (execution.send_prefix_tokens || execution.resume_from > 0) {
      r.mutable_prefix_token_ids()->Add(request.prompt_token_ids.begin(),
                                        request.prompt_token_ids.begin() + shard.token_begin);
    }
    r.set_resume_from(execution.resume_from);
    // prompt_logprobs need every prompt row's logits, which a reused prefix has not.
    r.set_bypass_prefix_cache(request.bypass_prefix_cache || request.sampling.prompt_logprobs.has_value());
    if (execution.nccl) *r.mutable_nccl() = *execution.nccl;
    calls.push_back(std::move(call));
  }
  return calls;
}

void AppendLogits(const v1::Logits& part, Logits& into) {
  into.rows += part.rows();
  if (into.vocab_size == 0) into.vocab_size = part.vocab_size();
  into.values.insert(into.values.end(), part.values().begin(), part.values().end());
}

void AppendLogits(const Logits& part, Logits& into) {
  into.rows += part.rows;
  if (into.vocab_size == 0) into.vocab_size = part.vocab_size;
  into.values.insert(into.values.end(), part.values.begin(), part.values.end());
}

// The shards' prompt logits in order of position: each shard sent its
// pieces' rows in order (PiecesOf), put back in place here. A part shorter
// than its pieces (never from an honest worker) gives what it has.
Logits PromptLogitsInOrder(const std::vector<Logits>& parts, const std::vector<ShardLease>& shards) {
  Logits all;
  if (parts.size() != shards.size()) {
    for (const Logits& part : parts) AppendLogits(part, all);
    return all;
  }
  auto append_rows = [&all](const Logits& part, int64_t row0, int64_t rows) {
    rows = std::max<int64_t>(0, std::min<int64_t>(rows, part.rows - row0));
    if (all.vocab_size == 0) all.vocab_size = part.vocab_size;
    if (rows == 0 || part.vocab_size != all.vocab_size) return;
    all.rows += static_cast<int32_t>(rows);
    all.values.insert(all.values.end(), part.values.begin() + row0 * part.vocab_size,
                      part.values.begin() + (row0 + rows) * part.vocab_size);
  };
  std::vector<int64_t> row0(shards.size(), 0);  // (shards): each part's next piece's first row
  for (const StripedPiece& p : PiecesOf(shards)) {  // in order of position
    append_rows(parts[p.rank], row0[p.rank], p.end - p.begin);
    row0[p.rank] += p.end - p.begin;
  }
  return all;
}

// What a shard's failed call means for the client.
absl::Status ShardFailure(const ShardLease& shard, int rank, int num_shards, const grpc::Status& status) {
  const std::string where = absl::StrCat("worker ", shard.address, " (shard ", rank + 1, " of ", num_shards, ")");
  if (status.error_code() == grpc::StatusCode::CANCELLED) {
    // Nobody here cancelled it: the worker ended the call (shutting down?).
    return absl::UnavailableError(absl::StrCat(where, " cancelled its call: ", status.error_message()));
  }
  const absl::Status failure = FromGrpcStatus(status);
  return absl::Status(failure.code(), absl::StrCat(where, ": ", failure.message()));
}

class ShardRelay {
 public:
  ShardRelay(const std::vector<ShardLease>& shards, const GenerateRequest& request, const ShardExecution& execution,
             GenerateEvents& events)
      : shards_(shards),
        request_(request),
        execution_(execution),
        events_(events),
        num_shards_(static_cast<int>(shards.size())),
        ended_(shards.size(), false),
        prefilled_(shards.size(), false),
        layers_done_(shards.size(), 0),
        prompt_logits_(shards.size()) {}

  bool tokens_started() const { return tokens_started_; }

  absl::StatusOr<GenerateResult> Run() {
    ShardStreams streams(MakeCalls(shards_, request_, execution_), execution_.deadline);
    int ended = 0;
    absl::Time next_poll = absl::Now();
    while (ended < num_shards_) {
      if (!outcome_ && absl::Now() >= next_poll) {
        next_poll = absl::Now() + execution_.poll_interval;
        if (absl::Status interrupted = execution_.interruption(); !interrupted.ok()) outcome_ = interrupted;
        if (!outcome_) CheckEarlyFinish();
      }
      if (!outcome_) {
        std::optional<ShardStreams::Item> item = streams.Next(execution_.poll_interval);
        if (item && item->ended) ++ended;
        if (item) Handle(*item);
        if (!outcome_ && last_finished_) outcome_ = OutcomeOnceOthersPrefilled();
      } else {
        // Decided: end every call and drain until all streams are over.
        streams.CancelAll();
        std::optional<ShardStreams::Item> item = streams.Next(execution_.poll_interval);
        if (item && item->ended) ++ended;
      }
    }
    if (!outcome_) outcome_ = absl::InternalError("every shard's stream ended without an outcome");
    if (!prefill_ended_) {
      prefill_ended_ = true;
      execution_.on_prefill_end(!outcome_->ok() ? *outcome_
                                                : absl::InternalError("the request ended before every shard "
                                                                      "reported `prefilled`"));
    }
    if (!outcome_->ok()) return *outcome_;
    return Response();
  }

 private:
  void Handle(const ShardStreams::Item& item) {
    const int rank = item.rank;
    const bool last = rank == num_shards_ - 1;
    if (item.ended) {
      if (!item.status.ok()) {
        outcome_ = ShardFailure(shards_[rank], rank, num_shards_, item.status);
        if (outcome_->code() == absl::StatusCode::kUnavailable) execution_.on_worker_unreachable(Blamed(item));
      } else if (last && !finished_) {
        outcome_ = absl::InternalError(
            absl::StrCat("worker ", shards_[rank].address, " ended the last shard without `finished`"));
      } else if (last) {
        last_finished_ = true;
        last_finished_at_ = absl::Now();
      }
      // A non-last shard ending OK early is the worker's choice; the last
      // shard reports any harm it does.
      ended_[rank] = true;
      return;
    }
    const v1::RunShardEvent& event = item.event;
    if (absl::Status broken = CheckEvent(event); !broken.ok()) {
      outcome_ = absl::InternalError(absl::StrCat("worker ", shards_[rank].address, " (shard ", rank + 1, " of ",
                                                  num_shards_, ") ", broken.message()));
      return;
    }
    switch (event.event_case()) {
      case v1::RunShardEvent::kProgress:
        if (event.progress().layers_total() < 1 || event.progress().layers_total() > (1 << 20) ||
            event.progress().layers_done() < 0) {
          break;  // a count no model has: not relayed
        }
        layers_total_ = std::max(layers_total_, event.progress().layers_total());
        layers_done_[rank] = std::max(layers_done_[rank], event.progress().layers_done());
        RelayProgress();
        break;
      case v1::RunShardEvent::kPromptLogits:
        if (WorkersReturnLogits(request_)) AppendLogits(event.prompt_logits(), prompt_logits_[rank]);
        break;
      case v1::RunShardEvent::kPrefilled:
        prefilled_[rank] = true;
        cached_prompt_tokens_ += std::clamp<int64_t>(event.prefilled().cached_prompt_tokens(), 0,
                                                     shards_[rank].token_end - shards_[rank].token_begin +
                                                         shards_[rank].late_end - shards_[rank].late_begin);
        layers_done_[rank] = std::max(layers_done_[rank], layers_total_);
        RelayProgress();
        if (!prefill_ended_ && std::all_of(prefilled_.begin(), prefilled_.end(), [](bool p) { return p; })) {
          prefill_ended_ = true;
          execution_.on_prefill_end(absl::OkStatus());
        }
        break;
      case v1::RunShardEvent::kTokens:
        if (last) RelayDelta(TokenDeltaOf(event.tokens(), request_.return_logits));
        break;
      case v1::RunShardEvent::kFinished:
        if (last) {
          finished_ = true;
          finish_reason_ = FinishReasonOf(event.finished().finish_reason());
        }
        break;
      case v1::RunShardEvent::EVENT_NOT_SET:
        break;
    }
  }

  // What an honest worker never sends: token ids outside the vocabulary,
  // logits that are not rows x vocab_size values of the model's vocabulary.
  absl::Status CheckEvent(const v1::RunShardEvent& event) const {
    const int64_t vocab = execution_.vocab_size;
    if (vocab <= 0) return absl::OkStatus();
    auto check_logits = [vocab](const v1::Logits& logits) -> absl::Status {
      if (logits.vocab_size() != vocab || logits.rows() < 0 ||
          static_cast<int64_t>(logits.values_size()) != static_cast<int64_t>(logits.rows()) * vocab) {
        return absl::InternalError(absl::StrCat("sent logits of ", logits.rows(), " x ", logits.vocab_size(),
                                                " with ", logits.values_size(), " values; the vocabulary has ", vocab));
      }
      return absl::OkStatus();
    };
    if (event.has_prompt_logits()) return check_logits(event.prompt_logits());
    if (event.has_tokens()) {
      const v1::TokenDelta& tokens = event.tokens();
      auto check_id = [vocab](int32_t id) -> absl::Status {
        if (id < 0 || id >= vocab) {
          return absl::InternalError(absl::StrCat("sent token id ", id, ", outside the vocabulary [0, ", vocab, ")"));
        }
        return absl::OkStatus();
      };
      for (int32_t id : tokens.token_ids()) RETURN_IF_ERROR(check_id(id));
      if (request_.sampling.logprobs.has_value()) {
        if (tokens.logprobs_size() != tokens.token_ids_size()) {
          return absl::InternalError(absl::StrCat("sent ", tokens.token_ids_size(), " tokens with ",
                                                  tokens.logprobs_size(), " logprobs; the request asked for logprobs "
                                                  "(a worker whose decode loop does not report them?)"));
        }
        for (int i = 0; i < tokens.logprobs_size(); ++i) {
          const v1::TokenLogprobs& logprobs = tokens.logprobs(i);
          if (logprobs.token_id() != tokens.token_ids(i) || logprobs.top_size() > *request_.sampling.logprobs) {
            return absl::InternalError(absl::StrCat("sent logprobs for token ", logprobs.token_id(), " with ",
                                                    logprobs.top_size(), " alternatives for token ", tokens.token_ids(i),
                                                    " (", *request_.sampling.logprobs, " asked for)"));
          }
          for (const v1::TokenLogprob& top : logprobs.top()) RETURN_IF_ERROR(check_id(top.token_id()));
        }
      }
      if (tokens.has_logits()) return check_logits(tokens.logits());
    }
    return absl::OkStatus();
  }

  // The worker a failed stream's UNAVAILABLE is about: the peer it named,
  // when that is one of this request's workers, else its own.
  const std::string& Blamed(const ShardStreams::Item& item) const {
    for (const ShardLease& shard : shards_) {
      if (!item.lost_peer.empty() && shard.address == item.lost_peer) return shard.address;
    }
    return shards_[item.rank].address;
  }

  // The last shard's tokens may arrive before the other shards' last
  // messages (the streams are independent): once it ended, wait for every
  // other shard's `prefilled` (its logits come before it), for a while.
  std::optional<absl::Status> OutcomeOnceOthersPrefilled() const {
    bool all_prefilled = true;
    for (int rank = 0; rank + 1 < num_shards_; ++rank) all_prefilled &= prefilled_[rank] || ended_[rank];
    if (all_prefilled) return absl::OkStatus();
    if (absl::Now() - last_finished_at_ < kPrefilledGrace) return std::nullopt;
    if (!WorkersReturnLogits(request_)) return absl::OkStatus();  // nothing is missing
    for (int rank = 0; rank + 1 < num_shards_; ++rank) {
      if (!prefilled_[rank] && !ended_[rank]) {
        return absl::InternalError(absl::StrCat("worker ", shards_[rank].address, " (shard ", rank + 1, " of ",
                                                num_shards_, ") never reported `prefilled` with its logits"));
      }
    }
    return absl::OkStatus();
  }

  void RelayProgress() {
    if (layers_total_ <= 0 || tokens_started_) return;
    const int32_t done = *std::min_element(layers_done_.begin(), layers_done_.end());
    if (done == progress_sent_) return;
    progress_sent_ = done;
    PrefillProgress progress;
    progress.layers_done = std::min(done, layers_total_);
    progress.layers_total = layers_total_;
    progress.prompt_tokens = static_cast<int32_t>(request_.prompt_token_ids.size());
    progress.shards = num_shards_;
    if (!events_.OnProgress(progress)) outcome_ = absl::CancelledError("the client went away");
  }

  // With stop strings a token may end the request, and the tokens after it
  // in the same delta must not count: relay one at a time then.
  void RelayDelta(const TokenDelta& delta) {
    if (request_.stopping.stop_strings.empty() || delta.token_ids.size() <= 1) {
      RelayTokens(delta);
      if (!outcome_) CheckEarlyFinish();
      return;
    }
    for (size_t i = 0; i < delta.token_ids.size() && !outcome_; ++i) {
      RelayTokens(TokenOf(delta, i));
      if (!outcome_) CheckEarlyFinish();
    }
  }

  void CheckEarlyFinish() {
    if (std::optional<FinishReason> reason = execution_.early_finish()) {
      finished_ = true;
      finish_reason_ = *reason;
      outcome_ = absl::OkStatus();
    }
  }

  void RelayTokens(const TokenDelta& delta) {
    if (!tokens_started_) {
      // Decoding means every shard is prefilled, whatever their progress
      // messages still in flight say: report prefill complete, then tokens.
      std::fill(layers_done_.begin(), layers_done_.end(), layers_total_);
      RelayProgress();
      tokens_started_ = true;
      if (outcome_) return;
    }
    token_ids_.insert(token_ids_.end(), delta.token_ids.begin(), delta.token_ids.end());
    logprobs_.insert(logprobs_.end(), delta.logprobs.begin(), delta.logprobs.end());
    if (request_.return_logits && delta.logits) AppendLogits(*delta.logits, token_logits_);
    if (!events_.OnTokens(delta)) outcome_ = absl::CancelledError("the client went away");
  }

  GenerateResult Response() const {
    GenerateResult result;
    result.request_id = execution_.client_request_id;
    result.token_ids = token_ids_;
    result.finish_reason = finish_reason_;
    result.usage.prompt_tokens = static_cast<int32_t>(request_.prompt_token_ids.size());
    result.usage.completion_tokens = static_cast<int32_t>(token_ids_.size());
    result.usage.total_tokens = result.usage.prompt_tokens + result.usage.completion_tokens;
    result.usage.cached_prompt_tokens = static_cast<int32_t>(cached_prompt_tokens_);
    if (WorkersReturnLogits(request_)) {
      Logits prompt_logits = PromptLogitsInOrder(prompt_logits_, shards_);
      if (request_.sampling.prompt_logprobs) {
        result.prompt_logprobs =
            PromptLogprobs(prompt_logits, request_.prompt_token_ids, *request_.sampling.prompt_logprobs);
      }
      if (request_.return_logits) {
        result.prompt_logits = std::move(prompt_logits);
        result.token_logits = token_logits_;
      }
    }
    result.logprobs = logprobs_;
    result.shards = num_shards_;
    return result;
  }

  const std::vector<ShardLease>& shards_;
  const GenerateRequest& request_;
  const ShardExecution& execution_;
  GenerateEvents& events_;
  const int num_shards_;

  static constexpr absl::Duration kPrefilledGrace = absl::Seconds(5);

  std::optional<absl::Status> outcome_;  // set once: how the request ends
  bool last_finished_ = false;           // the last shard's stream ended OK after `finished`
  absl::Time last_finished_at_;
  std::vector<bool> ended_;      // per shard: its stream ended
  std::vector<bool> prefilled_;  // per shard: it sent `prefilled`
  bool prefill_ended_ = false;   // on_prefill_end was called
  bool tokens_started_ = false;
  int32_t layers_total_ = 0;
  std::vector<int32_t> layers_done_;  // per shard
  int32_t progress_sent_ = -1;
  std::vector<Logits> prompt_logits_;  // per shard
  int64_t cached_prompt_tokens_ = 0;   // over the shards' `prefilled`
  std::vector<int32_t> token_ids_;
  std::vector<TokenLogprobs> logprobs_;  // one per token, when asked for
  Logits token_logits_;
  bool finished_ = false;
  FinishReason finish_reason_ = FinishReason::kUnspecified;
};

}  // namespace

absl::StatusOr<GenerateResult> ExecuteShards(const std::vector<ShardLease>& shards, const GenerateRequest& request,
                                             const ShardExecution& execution, GenerateEvents& events,
                                             bool* tokens_relayed) {
  if (shards.empty()) return absl::InternalError("a request was admitted with no shards");
  events.OnStart(execution.client_request_id);
  ShardRelay relay(shards, request, execution, events);
  absl::StatusOr<GenerateResult> result = relay.Run();
  if (tokens_relayed != nullptr) *tokens_relayed = relay.tokens_started();
  return result;
}

}  // namespace tessera
