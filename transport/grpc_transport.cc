// Blocks travel as raw bytes in PeerBlock.data; queries as one asynchronous
// AttendKv per holder on a shared completion queue. Both are idempotent on
// the receiving side (a resent block replaces its copy, a query reads), so a
// failed call may be tried again.
#include "transport/grpc_transport.h"

#include <algorithm>
#include <memory>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "tessera/v1/worker.grpc.pb.h"

namespace tessera {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The second try of a call that failed UNAVAILABLE: it waits for the channel
// to (re)connect, for at most the grace (and never past the peer timeout).
void PrepareRetry(grpc::ClientContext& context, std::chrono::milliseconds timeout) {
  context.set_wait_for_ready(true);
  context.set_deadline(std::chrono::system_clock::now() + std::min(timeout, kPeerReconnectGrace));
}

}  // namespace

absl::Status GrpcTransport::PeerLost(int rank, absl::string_view what, absl::string_view why) const {
  absl::Status status = absl::UnavailableError(absl::StrCat("request ", request_id_, ": ", what, " shard ", rank,
                                                            " at ", addresses_[rank], " failed: ", why));
  status.SetPayload(kLostPeerPayload, absl::Cord(addresses_[rank]));
  return status;
}

absl::Status GrpcTransport::Post(int to, uint64_t tag, std::string block) {
  if (to < 0 || to >= size()) return absl::InvalidArgumentError(absl::StrCat("no shard ", to, " of ", size()));
  tessera::v1::PeerBlock message;
  message.set_request_id(request_id_);
  message.set_request_secret(secret_);
  message.set_tag(tag);
  message.set_from_rank(rank_);
  message.set_data(std::move(block));
  tessera::v1::DeliverAck ack;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout_);
    status = stubs_.For(addresses_[to]).Deliver(&context, message, &ack);
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    grpc::ClientContext context;
    PrepareRetry(context, timeout_);
    status = stubs_.For(addresses_[to]).Deliver(&context, message, &ack);
  }
  if (metrics_ != nullptr) {
    metrics_->send_seconds.Observe(SecondsSince(start));
    metrics_->send_bytes.Increment(static_cast<double>(message.data().size()));
  }
  if (!status.ok()) return PeerLost(to, "sending to", status.error_message());
  return absl::OkStatus();
}

absl::StatusOr<std::string> GrpcTransport::Take(int from, uint64_t tag) {
  if (from < 0 || from >= size()) return absl::InvalidArgumentError(absl::StrCat("no shard ", from, " of ", size()));
  absl::StatusOr<std::string> block = mailbox_.Take(request_id_, secret_, tag, from, timeout_);
  if (block.status().code() == absl::StatusCode::kUnavailable) {
    absl::Status status = block.status();
    status.SetPayload(kLostPeerPayload, absl::Cord(addresses_[from]));
    return status;
  }
  return block;
}

absl::StatusOr<std::vector<AttentionPartial>> GrpcTransport::QueryKv(int64_t attention_slot, absl::Span<const float> q,
                                                                    int64_t q_len, int64_t q_position0) {
  tessera::v1::AttendKvRequest request;
  request.set_request_id(request_id_);
  request.set_request_secret(secret_);
  request.set_attention_slot(static_cast<int32_t>(attention_slot));
  request.set_q_position0(q_position0);
  request.set_q_len(static_cast<int32_t>(q_len));
  request.mutable_q()->Add(q.begin(), q.end());

  struct Call {
    int holder = 0;
    grpc::ClientContext context;
    tessera::v1::AttendKvResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<tessera::v1::AttendKvResponse>> reader;
  };
  const auto start = std::chrono::steady_clock::now();
  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<Call>> calls;
  for (int r = 0; r < size(); ++r) {
    if (r == rank_) continue;
    auto call = std::make_unique<Call>();
    call->holder = r;
    call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
    call->reader = stubs_.For(addresses_[r]).AsyncAttendKv(&call->context, request, &queue);
    call->reader->Finish(&call->response, &call->status, call.get());
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
  for (const std::unique_ptr<Call>& call : calls) {
    if (call->status.error_code() != grpc::StatusCode::UNAVAILABLE) continue;
    grpc::ClientContext context;
    PrepareRetry(context, timeout_);
    call->response.Clear();
    call->status = stubs_.For(addresses_[call->holder]).AttendKv(&context, request, &call->response);
  }
  if (metrics_ != nullptr) {
    metrics_->attend_kv_seconds.Observe(SecondsSince(start));
    metrics_->attend_kv_bytes.Increment(static_cast<double>(q.size() * sizeof(float) * calls.size()));
  }
  std::vector<AttentionPartial> parts;
  for (const std::unique_ptr<Call>& call : calls) {
    if (!call->status.ok()) return PeerLost(call->holder, "attention over the K/V of", call->status.error_message());
    AttentionPartial part;
    part.out.assign(call->response.out().begin(), call->response.out().end());
    part.lse.assign(call->response.lse().begin(), call->response.lse().end());
    parts.push_back(std::move(part));
  }
  return parts;
}

}  // namespace tessera
