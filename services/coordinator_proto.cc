// One function per message; enums by switch, so a new value fails to compile
// where it is not handled.
#include "services/coordinator_proto.h"

#include <algorithm>
#include <utility>

namespace tessera {
namespace {

SamplingParams FromProto(const v1::SamplingParams& sampling) {
  SamplingParams out;
  out.temperature = sampling.temperature();
  out.top_k = sampling.top_k();
  out.top_p = sampling.top_p();
  out.seed = sampling.seed();
  out.repetition_penalty = sampling.repetition_penalty();
  out.presence_penalty = sampling.presence_penalty();
  out.frequency_penalty = sampling.frequency_penalty();
  out.min_p = sampling.min_p();
  out.logit_bias.assign(sampling.logit_bias().begin(), sampling.logit_bias().end());
  std::sort(out.logit_bias.begin(), out.logit_bias.end());  // map order is unspecified: keep requests reproducible
  if (sampling.has_logprobs()) out.logprobs = sampling.logprobs();
  if (sampling.has_prompt_logprobs()) out.prompt_logprobs = sampling.prompt_logprobs();
  return out;
}

StoppingCriteria FromProto(const v1::StoppingCriteria& stopping) {
  StoppingCriteria out;
  out.max_new_tokens = stopping.max_new_tokens();
  out.stop_token_ids.assign(stopping.stop_token_ids().begin(), stopping.stop_token_ids().end());
  out.ignore_eos = stopping.ignore_eos();
  out.stop_strings.assign(stopping.stop_strings().begin(), stopping.stop_strings().end());
  out.min_tokens = stopping.min_tokens();
  return out;
}

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kUnspecified:
      return v1::FINISH_REASON_UNSPECIFIED;
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStopToken:
      return v1::FINISH_REASON_STOP_TOKEN;
    case FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
    case FinishReason::kStopString:
      return v1::FINISH_REASON_STOP_STRING;
    case FinishReason::kAborted:
      return v1::FINISH_REASON_ABORTED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void CopyLogits(const Logits& logits, v1::Logits& out) {
  out.set_rows(logits.rows);
  out.set_vocab_size(logits.vocab_size);
  out.mutable_values()->Add(logits.values.begin(), logits.values.end());
}

void CopyLogprobs(const std::vector<TokenLogprobs>& logprobs,
                  google::protobuf::RepeatedPtrField<v1::TokenLogprobs>& out) {
  for (const TokenLogprobs& position : logprobs) {
    v1::TokenLogprobs& entry = *out.Add();
    entry.set_token_id(position.token_id);
    entry.set_logprob(position.logprob);
    for (const TokenLogprob& top : position.top) {
      v1::TokenLogprob& alternative = *entry.add_top();
      alternative.set_token_id(top.token_id);
      alternative.set_logprob(top.logprob);
    }
  }
}

}  // namespace

GenerateRequest FromProto(const v1::GenerateRequest& request) {
  GenerateRequest out;
  out.request_id = request.request_id();
  out.prompt_token_ids.assign(request.prompt_token_ids().begin(), request.prompt_token_ids().end());
  out.prompt_text = request.prompt_text();
  out.add_special_tokens = request.add_special_tokens();
  out.keep_special_tokens = request.keep_special_tokens();
  out.sampling = FromProto(request.sampling());
  out.stopping = FromProto(request.stopping());
  out.return_logits = request.return_logits();
  out.priority = request.priority();
  out.cache_salt = request.cache_salt();
  out.bypass_prefix_cache = request.bypass_prefix_cache();
  return out;
}

TokenizeRequest FromProto(const v1::TokenizeRequest& request) {
  TokenizeRequest out;
  out.text = request.text();
  out.add_special_tokens = request.add_special_tokens();
  return out;
}

DetokenizeRequest FromProto(const v1::DetokenizeRequest& request) {
  DetokenizeRequest out;
  out.token_ids.assign(request.token_ids().begin(), request.token_ids().end());
  out.keep_special_tokens = request.keep_special_tokens();
  return out;
}

v1::GenerateResponse ToProto(const GenerateResult& result) {
  v1::GenerateResponse out;
  out.set_request_id(result.request_id);
  out.mutable_token_ids()->Add(result.token_ids.begin(), result.token_ids.end());
  out.set_finish_reason(ToProto(result.finish_reason));
  v1::Usage* usage = out.mutable_usage();
  usage->set_prompt_tokens(result.usage.prompt_tokens);
  usage->set_completion_tokens(result.usage.completion_tokens);
  usage->set_total_tokens(result.usage.total_tokens);
  usage->set_cached_prompt_tokens(result.usage.cached_prompt_tokens);
  if (result.prompt_logits) CopyLogits(*result.prompt_logits, *out.mutable_prompt_logits());
  if (result.token_logits) CopyLogits(*result.token_logits, *out.mutable_token_logits());
  out.set_shards(result.shards);
  out.set_text(result.text);
  CopyLogprobs(result.logprobs, *out.mutable_logprobs());
  CopyLogprobs(result.prompt_logprobs, *out.mutable_prompt_logprobs());
  return out;
}

v1::PrefillProgress ToProto(const PrefillProgress& progress) {
  v1::PrefillProgress out;
  out.set_layers_done(progress.layers_done);
  out.set_layers_total(progress.layers_total);
  out.set_prompt_tokens(progress.prompt_tokens);
  out.set_shards(progress.shards);
  return out;
}

v1::TokenDelta ToProto(const TokenDelta& delta) {
  v1::TokenDelta out;
  out.mutable_token_ids()->Add(delta.token_ids.begin(), delta.token_ids.end());
  if (delta.logits) CopyLogits(*delta.logits, *out.mutable_logits());
  out.set_text(delta.text);
  CopyLogprobs(delta.logprobs, *out.mutable_logprobs());
  return out;
}

v1::ModelInfo ToProto(const ModelInfo& info) {
  v1::ModelInfo out;
  out.set_model_type(info.model_type);
  out.set_model_path(info.model_path);
  out.set_vocab_size(info.vocab_size);
  out.set_num_layers(info.num_layers);
  out.set_context_capacity_tokens(info.context_capacity_tokens);
  out.set_context_available_tokens(info.context_available_tokens);
  out.set_workers_ready(info.workers_ready);
  out.set_max_new_tokens_limit(info.max_new_tokens_limit);
  out.set_eos_token_id(info.eos_token_id);
  out.set_tokenizer_path(info.tokenizer_path);
  out.set_max_context_tokens(info.max_context_tokens);
  out.set_trained_context_tokens(info.trained_context_tokens);
  out.set_default_max_new_tokens(info.default_max_new_tokens);
  return out;
}

v1::ServerInfo ToProto(const ServerInfo& info) {
  v1::ServerInfo out;
  out.set_version(info.version);
  out.set_backend(info.backend);
  for (const WorkerInfo& worker : info.workers) {
    v1::WorkerInfo* w = out.add_workers();
    w->set_address(worker.address);
    w->set_ready(worker.ready);
    w->set_capacity_tokens(worker.capacity_tokens);
    w->set_memory_used_bytes(worker.memory_used_bytes);
    w->set_memory_budget_bytes(worker.memory_budget_bytes);
    w->set_active_requests(worker.active_requests);
    w->set_metrics_address(worker.metrics_address);
    w->set_backend(worker.backend);
    for (const std::string& transport : worker.peer_transports) w->add_peer_transports(transport);
    w->set_not_ready_reason(worker.not_ready_reason);
  }
  out.set_running_requests(info.running_requests);
  out.set_metrics_address(info.metrics_address);
  out.set_peer_transport(info.peer_transport);
  out.set_nccl_groups(info.nccl_groups);
  out.set_queued_requests(info.queued_requests);
  return out;
}

v1::TokenizeResponse ToTokenizeResponse(const std::vector<int32_t>& token_ids) {
  v1::TokenizeResponse out;
  out.mutable_token_ids()->Add(token_ids.begin(), token_ids.end());
  return out;
}

v1::DetokenizeResponse ToDetokenizeResponse(std::string text) {
  v1::DetokenizeResponse out;
  out.set_text(std::move(text));
  return out;
}

v1::GenerateStreamResponse ToStreamFinished(GenerateResult result) {
  result.token_ids.clear();     // already streamed
  result.token_logits.reset();  // already streamed with their tokens
  result.text.clear();          // already streamed as the deltas' text
  result.logprobs.clear();      // already streamed with their tokens
  v1::GenerateStreamResponse out;
  out.set_request_id(result.request_id);
  *out.mutable_finished() = ToProto(result);
  return out;
}

}  // namespace tessera
