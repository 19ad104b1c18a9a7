// Proto in, proto out: the shard's events become RunShardEvent messages on
// the stream, and the call's cancellation is what the runner polls.
#include "services/worker_service.h"

#include <algorithm>

#include "rpc/grpc_util.h"

namespace tessera {
namespace {

using tessera::v1::RunShardEvent;

ShardRequest FromProto(const tessera::v1::RunShardRequest& r) {
  ShardRequest s;
  s.request_id = r.request_id();
  s.rank = r.rank();
  for (const auto& peer : r.shards()) s.shards.push_back({peer.address(), peer.token_begin(), peer.token_end()});
  s.token_ids.assign(r.token_ids().begin(), r.token_ids().end());
  s.return_logits = r.return_logits();
  s.sampling.temperature = r.sampling().temperature();
  s.sampling.top_k = r.sampling().top_k();
  s.sampling.top_p = r.sampling().top_p() > 0 ? r.sampling().top_p() : 1.0f;
  s.sampling.seed = r.sampling().seed();
  s.max_new_tokens = r.stopping().max_new_tokens();
  s.stop_token_ids.assign(r.stopping().stop_token_ids().begin(), r.stopping().stop_token_ids().end());
  s.eos_token_id = r.eos_token_id();
  s.reserved_bytes = r.reserved_bytes();
  s.peer_timeout = std::chrono::milliseconds(r.peer_timeout_ms());
  if (r.has_nccl()) {
    s.nccl_group_id = r.nccl().group_id();
    s.nccl_unique_id = r.nccl().unique_id();
  }
  return s;
}

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

// ShardEvents as RunShardEvent messages on the call's stream.
class StreamEvents final : public ShardEvents {
 public:
  StreamEvents(grpc::ServerWriter<RunShardEvent>* writer, int64_t vocab) : writer_(writer), vocab_(vocab) {}

  absl::Status Progress(int64_t layers_done, int64_t layers_total, int64_t prompt_tokens, int shards) override {
    RunShardEvent event;
    event.mutable_progress()->set_layers_done(static_cast<int32_t>(layers_done));
    event.mutable_progress()->set_layers_total(static_cast<int32_t>(layers_total));
    event.mutable_progress()->set_prompt_tokens(prompt_tokens);
    event.mutable_progress()->set_shards(shards);
    return Write(event);
  }
  absl::Status PromptLogits(absl::Span<const float> logits, int64_t vocab) override {
    RunShardEvent event;
    *event.mutable_prompt_logits() = ToLogits(logits, vocab);
    return Write(event);
  }
  absl::Status Prefilled(int64_t memory_bytes) override {
    RunShardEvent event;
    event.mutable_prefilled()->set_memory_bytes(memory_bytes);
    return Write(event);
  }
  absl::Status Token(int32_t token, absl::Span<const float> logits) override {
    RunShardEvent event;
    event.mutable_tokens()->add_token_ids(token);
    if (!logits.empty()) *event.mutable_tokens()->mutable_logits() = ToLogits(logits, vocab_);
    return Write(event);
  }
  absl::Status Finished(FinishReason reason, int32_t completion_tokens) override {
    RunShardEvent event;
    event.mutable_finished()->set_finish_reason(ToProto(reason));
    event.mutable_finished()->set_completion_tokens(completion_tokens);
    return Write(event);
  }

 private:
  absl::Status Write(const RunShardEvent& event) {
    if (!writer_->Write(event)) return absl::CancelledError("the coordinator went away");
    return absl::OkStatus();
  }

  grpc::ServerWriter<RunShardEvent>* writer_;
  int64_t vocab_;
};

}  // namespace

grpc::Status WorkerService::GetStatus(grpc::ServerContext*, const tessera::v1::GetWorkerStatusRequest*,
                                      tessera::v1::WorkerStatus* response) {
  const Engine& engine = runner_.engine();
  const ModelConfig& config = engine.config();
  const ShardRunnerOptions& options = runner_.options();
  response->set_address(options.address);
  response->set_model_type(config.model_type);
  response->set_vocab_size(static_cast<int32_t>(config.vocab_size));
  response->set_memory_budget_bytes(options.memory_budget_bytes);
  response->set_memory_used_bytes(runner_.memory_used_bytes());
  response->set_kv_bytes_per_token(engine.KvBytesPerToken());
  response->set_state_bytes_per_request(engine.StateBytesPerRequest());
  response->set_active_requests(runner_.active_requests());
  response->set_chunk_size(static_cast<int32_t>(config.mamba.chunk_size));
  response->set_max_position_embeddings(config.max_position_embeddings);
  response->set_eos_token_id(config.eos_token_id);
  response->set_num_layers(static_cast<int32_t>(config.num_layers));
  response->set_metrics_address(metrics_address_);
  response->set_backend(engine.backend());
  response->set_max_shard_tokens(options.max_shard_tokens);
  response->set_device_id(engine.device_id());
  for (const std::string& transport : transports_.Offered()) response->add_peer_transports(transport);
  return grpc::Status::OK;
}

grpc::Status WorkerService::RunShard(grpc::ServerContext* context, const tessera::v1::RunShardRequest* request,
                                     grpc::ServerWriter<RunShardEvent>* writer) {
  StreamEvents events(writer, runner_.engine().config().vocab_size);
  return ToGrpcStatus(runner_.RunShard(FromProto(*request), events, [context] { return context->IsCancelled(); }));
}

grpc::Status WorkerService::AttendKv(grpc::ServerContext*, const tessera::v1::AttendKvRequest* request,
                                     tessera::v1::AttendKvResponse* response) {
  absl::StatusOr<AttentionPartial> part = runner_.AttendKv(request->request_id(), request->attention_slot(),
                                                           request->q(), request->q_len(), request->q_position0());
  if (!part.ok()) return ToGrpcStatus(part.status());
  response->mutable_out()->Add(part->out.begin(), part->out.end());
  response->mutable_lse()->Add(part->lse.begin(), part->lse.end());
  return grpc::Status::OK;
}

grpc::Status WorkerService::Deliver(grpc::ServerContext*, const tessera::v1::PeerBlock* request,
                                    tessera::v1::DeliverAck*) {
  transports_.Deliver(request->request_id(), request->tag(), request->from_rank(), request->data());
  return grpc::Status::OK;
}

grpc::Status WorkerService::NewNcclUniqueId(grpc::ServerContext*, const tessera::v1::NewNcclUniqueIdRequest* request,
                                            tessera::v1::NewNcclUniqueIdResponse* response) {
  absl::StatusOr<std::string> id = transports_.NewNcclUniqueId(request->group_id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_unique_id(*id);
  return grpc::Status::OK;
}

}  // namespace tessera
