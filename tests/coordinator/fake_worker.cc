// The fake streams its scripted events with no computation: what it checks is
// the coordinator's side of the RunShard contract.
#include "tests/coordinator/fake_worker.h"

#include <algorithm>
#include <thread>

#include "absl/time/clock.h"
#include "rpc/grpc_util.h"

namespace tessera::testing {

std::unique_ptr<FakeWorker> FakeWorker::Start(FakeWorkerScript script) {
  std::unique_ptr<FakeWorker> worker(new FakeWorker(std::move(script)));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(worker.get());
  worker->server_ = builder.BuildAndStart();
  if (worker->server_ == nullptr || port == 0) return nullptr;
  worker->address_ = "127.0.0.1:" + std::to_string(port);
  return worker;
}

FakeWorker::~FakeWorker() { Stop(); }

void FakeWorker::Stop() {
  if (server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
}

v1::WorkerStatus FakeWorker::Status() const {
  v1::WorkerStatus status;
  status.set_address(address_);
  status.set_model_type("fake");
  status.set_vocab_size(script_.vocab_size);
  status.set_memory_budget_bytes(kFakeStateBytes + script_.capacity_tokens * kFakeKvBytesPerToken);
  status.set_memory_used_bytes(script_.reported_used_bytes);
  status.set_kv_bytes_per_token(kFakeKvBytesPerToken);
  status.set_state_bytes_per_request(kFakeStateBytes);
  status.set_chunk_size(script_.chunk_size);
  status.set_eos_token_id(2);
  status.set_num_layers(script_.layers);
  status.set_metrics_address("127.0.0.1:9" + address_.substr(address_.rfind(':') + 1));
  status.set_backend(script_.backend);
  status.set_max_shard_tokens(script_.max_shard_tokens);
  status.set_prefill_chunk_tokens(script_.prefill_chunk_tokens);
  status.set_max_prefill_rounds(script_.max_prefill_rounds);
  for (const std::string& transport : script_.peer_transports) status.add_peer_transports(transport);
  status.set_device_id(script_.device_id);
  absl::MutexLock lock(&mu_);
  status.set_active_requests(running_);
  return status;
}

bool FakeWorker::RegisterWith(const std::string& coordinator_address) {
  auto stub = v1::Coordinator::NewStub(MakeChannel(coordinator_address));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::RegisterWorkerRequest request;
  request.set_address(address_);
  v1::RegisterWorkerResponse response;
  return stub->RegisterWorker(&context, request, &response).ok();
}

void FakeWorker::SetAnswersStatus(bool answers) {
  absl::MutexLock lock(&mu_);
  answers_status_ = answers;
}

void FakeWorker::Release() {
  absl::MutexLock lock(&mu_);
  released_ = true;
}

void FakeWorker::ReleasePrefill() {
  absl::MutexLock lock(&mu_);
  prefill_released_ = true;
}

void FakeWorker::FailNextShardInPrefill(grpc::StatusCode code, const std::string& lost_peer) {
  absl::MutexLock lock(&mu_);
  fail_next_in_prefill_ = code;
  fail_next_lost_peer_ = lost_peer;
}

void FakeWorker::SetStatusEditor(std::function<void(v1::WorkerStatus&)> editor) {
  absl::MutexLock lock(&mu_);
  status_editor_ = std::move(editor);
}

void FakeWorker::SetAnswersNcclUniqueId(bool answers) {
  absl::MutexLock lock(&mu_);
  answers_nccl_unique_id_ = answers;
}

std::vector<v1::RunShardRequest> FakeWorker::Requests() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::RunShardRequest> requests;
  for (const FakeShardCall& call : calls_) requests.push_back(call.request);
  return requests;
}

std::vector<FakeShardCall> FakeWorker::Calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

std::vector<std::string> FakeWorker::NcclUniqueIds() const {
  absl::MutexLock lock(&mu_);
  return nccl_unique_ids_;
}

int FakeWorker::StartedShards() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(calls_.size());
}

int FakeWorker::RunningShards() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

int FakeWorker::CancelledShards() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

int FakeWorker::GetStatusCalls() const {
  absl::MutexLock lock(&mu_);
  return status_calls_;
}

grpc::Status FakeWorker::GetStatus(grpc::ServerContext*, const v1::GetWorkerStatusRequest*,
                                   v1::WorkerStatus* response) {
  {
    absl::MutexLock lock(&mu_);
    ++status_calls_;
    if (!answers_status_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake worker: not answering");
  }
  *response = Status();
  absl::MutexLock lock(&mu_);
  if (status_editor_) status_editor_(*response);
  return grpc::Status::OK;
}

bool FakeWorker::WaitUnlessCancelled(grpc::ServerContext* context, const std::function<bool()>& done) {
  while (!context->IsCancelled()) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

grpc::Status FakeWorker::Cancelled() {
  absl::MutexLock lock(&mu_);
  ++cancelled_;
  --running_;
  return grpc::Status(grpc::StatusCode::CANCELLED, "fake worker: cancelled");
}

grpc::Status FakeWorker::Failed(grpc::StatusCode code, const std::string& message) {
  absl::MutexLock lock(&mu_);
  --running_;
  return grpc::Status(code, message);
}

grpc::Status FakeWorker::NewNcclUniqueId(grpc::ServerContext*, const v1::NewNcclUniqueIdRequest*,
                                         v1::NewNcclUniqueIdResponse* response) {
  absl::MutexLock lock(&mu_);
  if (!answers_nccl_unique_id_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "fake worker: no NCCL here");
  }
  // 128 bytes, distinct per worker and call.
  std::string id = address_ + "#" + std::to_string(nccl_unique_ids_.size() + 1);
  id.resize(128, static_cast<char>(0x80 | nccl_unique_ids_.size()));
  nccl_unique_ids_.push_back(id);
  response->set_unique_id(id);
  return grpc::Status::OK;
}

grpc::Status FakeWorker::RunShard(grpc::ServerContext* context, const v1::RunShardRequest* request,
                                  grpc::ServerWriter<v1::RunShardEvent>* writer) {
  size_t index = 0;
  grpc::StatusCode fail_in_prefill = grpc::StatusCode::OK;
  std::string lost_peer;
  {
    absl::MutexLock lock(&mu_);
    index = calls_.size();
    calls_.push_back({*request, absl::Now()});
    ++running_;
    std::swap(fail_in_prefill, fail_next_in_prefill_);
    std::swap(lost_peer, fail_next_lost_peer_);
  }
  const bool last = request->rank() == request->shards_size() - 1;
  const int64_t begin = request->shards(request->rank()).token_begin();
  for (int32_t layer = 1; layer <= script_.layers; ++layer) {
    v1::RunShardEvent event;
    v1::PrefillProgress* progress = event.mutable_progress();
    progress->set_layers_done(layer);
    progress->set_layers_total(script_.layers);
    progress->set_prompt_tokens(request->token_ids_size());
    progress->set_shards(1);
    if (context->IsCancelled() || !writer->Write(event)) return Cancelled();
  }
  if (fail_in_prefill != grpc::StatusCode::OK) {
    if (!lost_peer.empty()) context->AddTrailingMetadata("tessera-lost-peer", lost_peer);
    return Failed(fail_in_prefill, "fake worker: failed in prefill");
  }
  if (script_.hold_prefill && !WaitUnlessCancelled(context, [this] {
        absl::MutexLock lock(&mu_);
        return prefill_released_;
      })) {
    return Cancelled();
  }
  if (script_.delay_before_logits > absl::ZeroDuration()) absl::SleepFor(script_.delay_before_logits);
  if (request->return_logits()) {
    // Row r of this shard holds its global position in every column.
    v1::RunShardEvent event;
    v1::Logits* logits = event.mutable_prompt_logits();
    logits->set_rows(request->token_ids_size());
    logits->set_vocab_size(script_.vocab_size);
    for (int row = 0; row < request->token_ids_size(); ++row) {
      for (int v = 0; v < script_.vocab_size; ++v) logits->add_values(static_cast<float>(begin + row));
    }
    if (!writer->Write(event)) return Cancelled();
  }
  v1::RunShardEvent prefilled;
  prefilled.mutable_prefilled()->set_memory_bytes(request->reserved_bytes());
  {
    absl::MutexLock lock(&mu_);
    calls_[index].prefilled = absl::Now();
  }
  if (!writer->Write(prefilled)) return Cancelled();
  if (script_.fail_after_prefill) return Failed(script_.fail_after_prefill_code, "fake worker: lost a peer");
  if (!last) {
    WaitUnlessCancelled(context, [] { return false; });
    return Cancelled();
  }
  if (script_.hold_last_shard && !WaitUnlessCancelled(context, [this] {
        absl::MutexLock lock(&mu_);
        return released_;
      })) {
    return Cancelled();
  }
  const int count = std::min<int>(static_cast<int>(script_.tokens.size()), request->stopping().max_new_tokens());
  for (int i = 0; i < count; ++i) {
    if (i == script_.fail_after_tokens) return Failed(grpc::StatusCode::UNAVAILABLE, "fake worker: lost after tokens");
    v1::RunShardEvent event;
    event.mutable_tokens()->add_token_ids(script_.tokens[i]);
    if (request->sampling().has_logprobs() && !script_.omit_logprobs) {
      v1::TokenLogprobs* logprobs = event.mutable_tokens()->add_logprobs();
      logprobs->set_token_id(script_.tokens[i]);
      logprobs->set_logprob(-(i + 1) / 4.0f);
      for (int k = 0; k < request->sampling().logprobs(); ++k) {
        v1::TokenLogprob* top = logprobs->add_top();
        top->set_token_id(k);
        top->set_logprob(-1.0f - k);
      }
    }
    if (request->return_logits()) {
      v1::Logits* logits = event.mutable_tokens()->mutable_logits();
      logits->set_rows(1);
      logits->set_vocab_size(script_.vocab_size);
      for (int v = 0; v < script_.vocab_size; ++v) logits->add_values(static_cast<float>(-1 - i));
    }
    if (context->IsCancelled() || !writer->Write(event)) return Cancelled();
  }
  v1::RunShardEvent finished;
  finished.mutable_finished()->set_finish_reason(script_.finish_reason);
  finished.mutable_finished()->set_completion_tokens(count);
  writer->Write(finished);
  absl::MutexLock lock(&mu_);
  --running_;
  return grpc::Status::OK;
}

bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

}  // namespace tessera::testing
