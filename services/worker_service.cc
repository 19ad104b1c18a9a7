// Proto in, proto out: the shard's events become RunShardEvent messages on
// the stream, and the call's cancellation is what the runner polls.
#include "services/worker_service.h"

#include "absl/strings/cord.h"
#include "absl/types/optional.h"
#include "common/striped_rounds.h"
#include "rpc/grpc_util.h"
#include "services/worker_proto.h"
#include "transport/grpc_transport.h"  // kLostPeerPayload

namespace tessera {

grpc::Status WorkerService::GetStatus(grpc::ServerContext*, const tessera::v1::GetWorkerStatusRequest*,
                                      tessera::v1::WorkerStatus* response) {
  const Engine& engine = runner_.engine();
  const ModelConfig& config = engine.config();
  const ShardRunnerOptions& options = runner_.options();
  runner_.PublishMemoryMetrics();  // undelivered peer blocks come and expire between requests
  response->set_address(options.address);
  response->set_model_type(config.model_type);
  response->set_vocab_size(static_cast<int32_t>(config.vocab_size));
  response->set_memory_budget_bytes(options.memory_budget_bytes);
  response->set_memory_used_bytes(runner_.memory_used_bytes());
  response->set_kv_bytes_per_token(engine.KvBytesPerToken());
  response->set_state_bytes_per_request(engine.StateBytesPerRequest());
  response->set_active_requests(runner_.active_requests());
  response->set_chunk_size(static_cast<int32_t>(config.mamba.chunk_size));
  response->set_max_context_tokens(options.max_context_tokens);
  response->set_eos_token_id(config.eos_token_id);
  response->set_num_layers(static_cast<int32_t>(config.num_layers));
  response->set_metrics_address(metrics_address_);
  response->set_backend(engine.backend());
  response->set_max_shard_tokens(options.max_shard_tokens);
  response->set_prefill_chunk_tokens(engine.prefill_chunk_tokens());
  response->set_max_prefill_rounds(static_cast<int32_t>(kMaxPrefillRounds));
  response->set_device_id(engine.device_id());
  response->set_prefix_block_tokens(runner_.prefix_cache().block_tokens());
  response->set_prefix_cache_bytes(runner_.prefix_cache().bytes());
  for (const std::string& transport : transports_.Offered()) response->add_peer_transports(transport);
  return grpc::Status::OK;
}

grpc::Status WorkerService::RunShard(grpc::ServerContext* context, const tessera::v1::RunShardRequest* request,
                                     grpc::ServerWriter<tessera::v1::RunShardEvent>* writer) {
  StreamEvents events(writer, runner_.engine().config().vocab_size);
  const absl::Status status =
      runner_.RunShard(FromProto(*request), events, [context] { return context->IsCancelled(); });
  // A peer at fault is named for the coordinator, which then blames it, not this worker.
  if (absl::optional<absl::Cord> peer = status.GetPayload(kLostPeerPayload)) {
    context->AddTrailingMetadata(kLostPeerMetadataKey, std::string(*peer));
  }
  return ToGrpcStatus(status);
}

grpc::Status WorkerService::AttendKv(grpc::ServerContext*, const tessera::v1::AttendKvRequest* request,
                                     tessera::v1::AttendKvResponse* response) {
  absl::StatusOr<AttentionPartial> part =
      runner_.AttendKv(request->request_id(), request->request_secret(), request->attention_slot(), request->q(),
                       request->q_len(), request->q_position0());
  if (!part.ok()) return ToGrpcStatus(part.status());
  response->mutable_out()->Add(part->out.begin(), part->out.end());
  response->mutable_lse()->Add(part->lse.begin(), part->lse.end());
  return grpc::Status::OK;
}

grpc::Status WorkerService::Deliver(grpc::ServerContext*, const tessera::v1::PeerBlock* request,
                                    tessera::v1::DeliverAck*) {
  return ToGrpcStatus(transports_.Deliver(request->request_id(), request->request_secret(), request->tag(),
                                          request->from_rank(), request->data()));
}

grpc::Status WorkerService::NewNcclUniqueId(grpc::ServerContext*, const tessera::v1::NewNcclUniqueIdRequest* request,
                                            tessera::v1::NewNcclUniqueIdResponse* response) {
  absl::StatusOr<std::string> id = transports_.NewNcclUniqueId(request->group_id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_unique_id(*id);
  return grpc::Status::OK;
}

grpc::Status WorkerService::DropPrefixCache(grpc::ServerContext*, const tessera::v1::DropPrefixCacheRequest*,
                                            tessera::v1::DropPrefixCacheResponse* response) {
  response->set_freed_bytes(runner_.DropPrefixCache());
  response->set_workers(1);
  return grpc::Status::OK;
}

}  // namespace tessera
