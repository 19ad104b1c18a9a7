// A scripted tessera.v1.Worker for coordinator tests: it reports a fixed
// status, registers with the coordinator, and runs RunShard as the contract
// in worker.proto says (progress per layer, optional prompt logits,
// `prefilled`; the last shard then streams tokens and `finished`; the others
// wait until cancelled), with switches for the failures tests need. It
// hands out NCCL unique ids (distinct bytes each call) and records every
// RunShard call with when it arrived and when it sent `prefilled`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tessera/v1/worker.grpc.pb.h"

namespace tessera::testing {

inline constexpr int64_t kFakeKvBytesPerToken = 100;
inline constexpr int64_t kFakeStateBytes = 1000;

struct FakeWorkerScript {
  int64_t capacity_tokens = 1000;  // sets memory_budget_bytes
  int64_t reported_used_bytes = 0;  // memory_used_bytes in every status (held for no request of ours)
  int32_t vocab_size = 64;
  int32_t chunk_size = 4;
  int32_t layers = 4;                                              // progress events per shard
  std::vector<int32_t> tokens = {11, 12, 13, 14, 15, 16, 17, 18};  // the last shard's output
  v1::FinishReason finish_reason = v1::FINISH_REASON_LENGTH;
  bool hold_last_shard = false;        // the last shard waits for Release() (or cancellation) before decoding
  bool fail_after_prefill = false;     // the stream fails right after `prefilled`, with this code:
  grpc::StatusCode fail_after_prefill_code = grpc::StatusCode::UNAVAILABLE;
  absl::Duration delay_before_logits;  // a pause after progress, before logits and `prefilled`
  bool hold_prefill = false;           // every shard waits for ReleasePrefill() (or cancellation) before `prefilled`
  std::string backend = "cpu";
  std::vector<std::string> peer_transports = {"grpc"};
  std::string device_id;  // WorkerStatus.device_id: empty (a CPU worker)
  int64_t max_shard_tokens = 0;  // reported prefill limit; 0: none
  int64_t prefill_chunk_tokens = 0;  // reported piece size; 0: every shard in one pass (an older worker)
  int32_t max_prefill_rounds = 0;    // reported; 0: a shard of several in one pass (an older worker)
  int fail_after_tokens = -1;    // >= 0: the last shard's stream fails UNAVAILABLE after this many tokens
  // With sampling.logprobs: token i's logprob is -(i + 1) / 4 and its
  // alternatives are ids 0, 1, ... with logprobs -1, -2, ... (unless omitted,
  // as a worker whose decode loop does not report them).
  bool omit_logprobs = false;
};

// One RunShard call as the fake saw it.
struct FakeShardCall {
  v1::RunShardRequest request;
  absl::Time arrived;
  absl::Time prefilled = absl::InfiniteFuture();  // when it sent `prefilled`; never: InfiniteFuture
};

class FakeWorker : public v1::Worker::Service {
 public:
  // Serves on 127.0.0.1 at a free port.
  static std::unique_ptr<FakeWorker> Start(FakeWorkerScript script);
  ~FakeWorker() override;

  const std::string& address() const { return address_; }
  v1::WorkerStatus Status() const;

  // One RegisterWorker call; returns false when it failed.
  bool RegisterWith(const std::string& coordinator_address);

  void SetAnswersStatus(bool answers);  // false: GetStatus fails UNAVAILABLE
  void Release();                       // lets held last shards decode
  void ReleasePrefill();                // lets shards held by hold_prefill (and later ones) send `prefilled`
  // The next RunShard call fails with `code` after its progress, before
  // `prefilled`; a non-empty `lost_peer` goes in its trailing metadata as the
  // peer at fault (as a real worker names one).
  void FailNextShardInPrefill(grpc::StatusCode code, const std::string& lost_peer = "");
  // Rewrites every later GetStatus answer (a worker reporting absurd numbers).
  void SetStatusEditor(std::function<void(v1::WorkerStatus&)> editor);
  void SetAnswersNcclUniqueId(bool answers);  // false: NewNcclUniqueId fails FAILED_PRECONDITION
  void Stop();                          // shuts the server down, cancelling running calls

  std::vector<v1::RunShardRequest> Requests() const;
  std::vector<FakeShardCall> Calls() const;
  std::vector<std::string> NcclUniqueIds() const;  // every id handed out, in order
  int StartedShards() const;
  int RunningShards() const;
  int CancelledShards() const;
  int GetStatusCalls() const;

  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetWorkerStatusRequest* request,
                         v1::WorkerStatus* response) override;
  grpc::Status RunShard(grpc::ServerContext* context, const v1::RunShardRequest* request,
                        grpc::ServerWriter<v1::RunShardEvent>* writer) override;
  grpc::Status NewNcclUniqueId(grpc::ServerContext* context, const v1::NewNcclUniqueIdRequest* request,
                               v1::NewNcclUniqueIdResponse* response) override;

 private:
  explicit FakeWorker(FakeWorkerScript script) : script_(std::move(script)) {}
  // Waits until `done` or the call is cancelled; returns false when cancelled.
  bool WaitUnlessCancelled(grpc::ServerContext* context, const std::function<bool()>& done);
  grpc::Status Cancelled();
  grpc::Status Failed(grpc::StatusCode code, const std::string& message);

  const FakeWorkerScript script_;
  std::string address_;
  std::unique_ptr<grpc::Server> server_;

  mutable absl::Mutex mu_;
  bool answers_status_ = true;
  bool released_ = false;
  bool prefill_released_ = false;
  bool answers_nccl_unique_id_ = true;
  grpc::StatusCode fail_next_in_prefill_ = grpc::StatusCode::OK;
  std::string fail_next_lost_peer_;
  std::function<void(v1::WorkerStatus&)> status_editor_;
  std::vector<FakeShardCall> calls_;
  std::vector<std::string> nccl_unique_ids_;
  int running_ = 0;
  int cancelled_ = 0;
  int status_calls_ = 0;
};

// Polls `condition` every 5 ms until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(5));

}  // namespace tessera::testing
