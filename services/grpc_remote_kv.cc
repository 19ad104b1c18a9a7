// One asynchronous AttendKv per holder on a shared completion queue.
#include "services/grpc_remote_kv.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace tessera {

absl::StatusOr<std::vector<AttentionPartial>> GrpcRemoteKv::Attend(int64_t attention_slot, absl::Span<const float> q,
                                                                   int64_t q_len, int64_t q_position0) {
  tessera::v1::AttendKvRequest request;
  request.set_request_id(request_id_);
  request.set_attention_slot(static_cast<int32_t>(attention_slot));
  request.set_q_position0(q_position0);
  request.set_q_len(static_cast<int32_t>(q_len));
  request.mutable_q()->Add(q.begin(), q.end());

  struct Call {
    grpc::ClientContext context;
    tessera::v1::AttendKvResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<tessera::v1::AttendKvResponse>> reader;
  };
  const auto start = std::chrono::steady_clock::now();
  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<Call>> calls;
  for (size_t i = 0; i < holders_.size(); ++i) {
    auto call = std::make_unique<Call>();
    call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
    call->reader = stubs_.For(holders_[i]).AsyncAttendKv(&call->context, request, &queue);
    call->reader->Finish(&call->response, &call->status, reinterpret_cast<void*>(i));
    calls.push_back(std::move(call));
  }
  for (size_t done = 0; done < calls.size(); ++done) {
    void* tag = nullptr;
    bool ok = false;
    if (!queue.Next(&tag, &ok)) return absl::InternalError("completion queue shut down");
  }
  queue.Shutdown();
  void* drained_tag = nullptr;
  bool drained_ok = false;
  while (queue.Next(&drained_tag, &drained_ok)) {
  }
  if (metrics_ != nullptr) {
    metrics_->peer_attend_kv_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    metrics_->peer_attend_kv_bytes.Increment(static_cast<double>(q.size() * sizeof(float) * calls.size()));
  }
  std::vector<AttentionPartial> parts;
  for (size_t i = 0; i < calls.size(); ++i) {
    const grpc::Status& status = calls[i]->status;
    if (!status.ok()) {
      return absl::UnavailableError(absl::StrCat("request ", request_id_, ": attention over the K/V at ", holders_[i],
                                                 " failed: ", status.error_message()));
    }
    AttentionPartial part;
    part.out.assign(calls[i]->response.out().begin(), calls[i]->response.out().end());
    part.lse.assign(calls[i]->response.lse().begin(), calls[i]->response.lse().end());
    parts.push_back(std::move(part));
  }
  return parts;
}

}  // namespace tessera
