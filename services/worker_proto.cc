// Field by field, in the order of the messages.
#include "services/worker_proto.h"

#include <algorithm>
#include <cstdint>

namespace tessera {
namespace {

using tessera::v1::RunShardEvent;

tessera::v1::Logits ToLogits(absl::Span<const float> values, int64_t vocab) {
  tessera::v1::Logits out;
  out.set_rows(static_cast<int32_t>(values.size() / vocab));
  out.set_vocab_size(static_cast<int32_t>(vocab));
  out.mutable_values()->Add(values.begin(), values.end());
  return out;
}

tessera::v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return tessera::v1::FINISH_REASON_LENGTH;
    case FinishReason::kStopToken:
      return tessera::v1::FINISH_REASON_STOP_TOKEN;
    case FinishReason::kEos:
      return tessera::v1::FINISH_REASON_EOS;
  }
  return tessera::v1::FINISH_REASON_LENGTH;
}

}  // namespace

ShardRequest FromProto(const tessera::v1::RunShardRequest& r) {
  ShardRequest s;
  s.request_id = r.request_id();
  s.secret = r.request_secret();
  s.rank = r.rank();
  for (const auto& peer : r.shards()) {
    s.shards.push_back({peer.address(), peer.token_begin(), peer.token_end(), peer.late_begin(), peer.late_end()});
  }
  s.token_ids.assign(r.token_ids().begin(), r.token_ids().end());
  s.prefill_rounds = r.prefill_rounds() == 0 ? 1 : r.prefill_rounds();  // 0 on the wire: one pass
  s.return_logits = r.return_logits();
  s.sampling.temperature = r.sampling().temperature();
  s.sampling.top_k = r.sampling().top_k();
  s.sampling.top_p = r.sampling().top_p();  // 0: no cut, as 1 (the sampler's rule); validated by the runner
  s.sampling.seed = r.sampling().seed();
  // 0 means none on the wire; the sampler's none is 1.
  s.sampling.repetition_penalty = r.sampling().repetition_penalty() == 0 ? 1.0f : r.sampling().repetition_penalty();
  s.sampling.presence_penalty = r.sampling().presence_penalty();
  s.sampling.frequency_penalty = r.sampling().frequency_penalty();
  s.sampling.min_p = r.sampling().min_p();
  s.sampling.logit_bias.assign(r.sampling().logit_bias().begin(), r.sampling().logit_bias().end());
  std::sort(s.sampling.logit_bias.begin(), s.sampling.logit_bias.end());  // map order is unspecified
  s.sampling.logprobs = r.sampling().has_logprobs() ? r.sampling().logprobs() : -1;
  s.max_new_tokens = r.stopping().max_new_tokens();
  s.stop_token_ids.assign(r.stopping().stop_token_ids().begin(), r.stopping().stop_token_ids().end());
  s.eos_token_id = r.eos_token_id();
  s.sampling.min_tokens = r.stopping().min_tokens();
  if (s.sampling.min_tokens > 0) {
    s.sampling.min_tokens_masked_ids = s.stop_token_ids;
    if (s.eos_token_id >= 0 && s.eos_token_id <= INT32_MAX) {
      s.sampling.min_tokens_masked_ids.push_back(static_cast<int32_t>(s.eos_token_id));
    }
  }
  const bool decodes = s.rank == static_cast<int>(s.shards.size()) - 1;  // only the last shard samples
  if (decodes && s.sampling.repetition_penalty != 1) {
    s.sampling.prompt_token_ids.assign(r.penalty_token_ids().begin(), r.penalty_token_ids().end());
    s.sampling.prompt_token_ids.insert(s.sampling.prompt_token_ids.end(), s.token_ids.begin(), s.token_ids.end());
  }
  s.reserved_bytes = r.reserved_bytes();
  s.peer_timeout = std::chrono::milliseconds(r.peer_timeout_ms());
  if (r.has_nccl()) {
    s.nccl_group_id = r.nccl().group_id();
    s.nccl_unique_id = r.nccl().unique_id();
  }
  s.cache_salt = r.cache_salt();
  s.bypass_prefix_cache = r.bypass_prefix_cache();
  s.prefix_token_ids.assign(r.prefix_token_ids().begin(), r.prefix_token_ids().end());
  s.resume_from = r.resume_from();
  return s;
}

absl::Status StreamEvents::Progress(int64_t layers_done, int64_t layers_total, int64_t prompt_tokens, int shards) {
  RunShardEvent event;
  event.mutable_progress()->set_layers_done(static_cast<int32_t>(layers_done));
  event.mutable_progress()->set_layers_total(static_cast<int32_t>(layers_total));
  event.mutable_progress()->set_prompt_tokens(prompt_tokens);
  event.mutable_progress()->set_shards(shards);
  return Write(event);
}

absl::Status StreamEvents::PromptLogits(absl::Span<const float> logits, int64_t vocab) {
  RunShardEvent event;
  *event.mutable_prompt_logits() = ToLogits(logits, vocab);
  return Write(event);
}

absl::Status StreamEvents::Prefilled(int64_t memory_bytes, int64_t cached_prompt_tokens) {
  RunShardEvent event;
  event.mutable_prefilled()->set_memory_bytes(memory_bytes);
  event.mutable_prefilled()->set_cached_prompt_tokens(cached_prompt_tokens);
  return Write(event);
}

absl::Status StreamEvents::Token(int32_t token, absl::Span<const float> logits) {
  SampledToken sampled;
  sampled.token = token;
  return TokenWithLogprobs(sampled, logits);
}

absl::Status StreamEvents::TokenWithLogprobs(const SampledToken& sampled, absl::Span<const float> logits) {
  RunShardEvent event;
  tessera::v1::TokenDelta& delta = *event.mutable_tokens();
  delta.add_token_ids(sampled.token);
  if (!logits.empty()) *delta.mutable_logits() = ToLogits(logits, vocab_);
  if (sampled.has_logprobs) {
    tessera::v1::TokenLogprobs& logprobs = *delta.add_logprobs();
    logprobs.set_token_id(sampled.token);
    logprobs.set_logprob(sampled.logprob);
    for (const TokenLogprob& top : sampled.top_logprobs()) {
      tessera::v1::TokenLogprob& entry = *logprobs.add_top();
      entry.set_token_id(top.token);
      entry.set_logprob(top.logprob);
    }
  }
  return Write(event);
}

absl::Status StreamEvents::Finished(FinishReason reason, int32_t completion_tokens) {
  RunShardEvent event;
  event.mutable_finished()->set_finish_reason(ToProto(reason));
  event.mutable_finished()->set_completion_tokens(completion_tokens);
  return Write(event);
}

absl::Status StreamEvents::Write(const RunShardEvent& event) {
  if (!writer_->Write(event)) return absl::CancelledError("the coordinator went away");
  return absl::OkStatus();
}

}  // namespace tessera
