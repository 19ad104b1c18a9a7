// tessera.v1.Worker: runs shards of requests with the model
// it holds, exchanging blocks with peers directly, keeps each request's K/V
// and states while its RunShard call lasts, and answers split-KV attention.
// Memory: every running shard reserves what the coordinator planned for it;
// a shard that would exceed the budget is refused with RESOURCE_EXHAUSTED.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "services/peer_stubs.h"
#include "services/worker_metrics.h"
#include "tessera/v1/worker.grpc.pb.h"
#include "worker/engine.h"
#include "worker/peer_mailbox.h"

namespace tessera {

class NcclGroups;  // worker/nccl, in builds with NCCL

struct WorkerOptions {
  std::string advertised_address;  // what peers and the coordinator dial
  int64_t memory_budget_bytes = int64_t{1} << 30;
  WorkerMetrics* metrics = nullptr;  // optional; must outlive the service
  std::string metrics_address;       // reported in GetStatus, empty when none
  // The NCCL communicators of this worker's groups (a CUDA worker in a build
  // with NCCL); null: shards exchange over gRPC only. Must outlive the service.
  NcclGroups* nccl_groups = nullptr;
  // The longest shard this worker prefills (Engine::PrefillTokenLimit); 0: no
  // limit. Reported in GetStatus; a longer shard is refused.
  int64_t max_shard_tokens = 0;
};

class WorkerService final : public tessera::v1::Worker::Service {
 public:
  // `engine` must outlive the service.
  WorkerService(Engine& engine, WorkerOptions options);

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

  // Set once the server has bound its port, before any request arrives.
  void set_advertised_address(std::string address) { options_.advertised_address = std::move(address); }

  int64_t memory_used_bytes() const;
  int active_requests() const;

 private:
  struct ActiveShard {
    std::mutex mu;         // guards state against AttendKv during decode appends
    std::unique_ptr<ShardState> state;
    int64_t reserved_bytes = 0;
    std::atomic<int64_t> actual_bytes{0};  // state.MemoryBytes() as of the last step
  };

  absl::StatusOr<std::shared_ptr<ActiveShard>> Admit(const tessera::v1::RunShardRequest& request);
  absl::Status RunAdmittedShard(const tessera::v1::RunShardRequest& request, ActiveShard& shard,
                                const std::atomic<bool>& cancelled,
                                grpc::ServerWriter<tessera::v1::RunShardEvent>* writer);
  absl::Status Decode(const tessera::v1::RunShardRequest& request, ActiveShard& shard, std::vector<float> logits,
                      const std::atomic<bool>& cancelled, grpc::ServerWriter<tessera::v1::RunShardEvent>* writer);
  void Release(const std::string& request_id);
  void PublishMemoryMetrics();
  std::shared_ptr<ActiveShard> Find(const std::string& request_id) const;

  Engine& engine_;
  WorkerOptions options_;
  PeerMailbox mailbox_;
  PeerStubs stubs_;
  mutable std::mutex mu_;
  std::condition_variable released_;  // memory was freed: a waiting Admit may fit now
  std::map<std::string, std::shared_ptr<ActiveShard>> shards_;  // by request id
  int64_t reserved_bytes_ = 0;
};

}  // namespace tessera
