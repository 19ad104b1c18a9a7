// tessera.v1.Worker, the worker's gRPC face: each handler translates between
// the proto and the worker's proto-free API (worker/shard_runner.h for the
// request lifecycle, transport/worker_transports.h for peer blocks and NCCL
// ids) and maps absl::Status to grpc::Status. Nothing else lives here.
#pragma once

#include <string>

#include "tessera/v1/worker.grpc.pb.h"
#include "transport/worker_transports.h"
#include "worker/shard_runner.h"

namespace tessera {

// Trailing metadata of a failed RunShard whose cause is a peer: the peer's
// address (the coordinator's shard_streams.h reads the same key).
inline constexpr char kLostPeerMetadataKey[] = "tessera-lost-peer";

class WorkerService final : public tessera::v1::Worker::Service {
 public:
  // `runner` and `transports` must outlive the service; `metrics_address`
  // is reported in GetStatus (empty when none is served).
  WorkerService(ShardRunner& runner, WorkerTransports& transports, std::string metrics_address)
      : runner_(runner), transports_(transports), metrics_address_(std::move(metrics_address)) {}

  grpc::Status GetStatus(grpc::ServerContext* context, const tessera::v1::GetWorkerStatusRequest* request,
                         tessera::v1::WorkerStatus* response) override;
  grpc::Status RunShard(grpc::ServerContext* context, const tessera::v1::RunShardRequest* request,
                        grpc::ServerWriter<tessera::v1::RunShardEvent>* writer) override;
  grpc::Status AttendKv(grpc::ServerContext* context, const tessera::v1::AttendKvRequest* request,
                        tessera::v1::AttendKvResponse* response) override;
  grpc::Status Deliver(grpc::ServerContext* context, const tessera::v1::PeerBlock* request,
                       tessera::v1::DeliverAck* response) override;
  grpc::Status NewNcclUniqueId(grpc::ServerContext* context, const tessera::v1::NewNcclUniqueIdRequest* request,
                               tessera::v1::NewNcclUniqueIdResponse* response) override;
  grpc::Status DropPrefixCache(grpc::ServerContext* context, const tessera::v1::DropPrefixCacheRequest* request,
                               tessera::v1::DropPrefixCacheResponse* response) override;

 private:
  ShardRunner& runner_;
  WorkerTransports& transports_;
  std::string metrics_address_;
};

}  // namespace tessera
