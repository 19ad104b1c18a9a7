// NcclCommunicator: every NCCL call non-blocking, then polled against a
// deadline, so that a dead or silent peer costs one request, not the worker.
//
// The NCCL rules this file follows (user guide, "Fault Tolerance"; checked
// against the NCCL 2.28 sources):
// - ncclCommInitRankConfig with blocking = 0 returns at once (ncclInProgress)
//   with the handle set; the group has formed when ncclCommGetAsyncError stops
//   reporting ncclInProgress.
// - An enqueue (ncclAllGather, ncclGroupEnd) may return ncclInProgress; no
//   other NCCL call may touch the communicator until ncclCommGetAsyncError
//   reports ncclSuccess. Only then is the kernel on the stream, and the
//   operation is done when cudaStreamQuery reports the stream idle.
// - ncclCommAbort may be called at any point of the above (it sets the flag
//   that the init thread, the proxy and the kernels poll); it is blocking even
//   for non-blocking communicators, and frees the communicator, so it is the
//   last call on it. Abort is local: peers notice only through their own
//   timeouts or transport errors.
#include "transport/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/cuda_device_scope.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

static_assert(sizeof(ncclUniqueId) == NCCL_UNIQUE_ID_BYTES, "ncclUniqueId is its bytes");

ncclComm_t AsComm(void* comm) { return static_cast<ncclComm_t>(comm); }

bool IsCancelled(const std::atomic<bool>* cancelled) { return cancelled != nullptr && cancelled->load(); }

int64_t MillisSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Spin briefly (collectives between GPUs of one host take tens of µs), then
// back off so that a long wait costs little CPU.
void PollPause(Clock::duration waited) {
  using std::chrono::microseconds;
  if (waited < microseconds(300)) {
    std::this_thread::yield();
  } else if (waited < std::chrono::milliseconds(20)) {
    std::this_thread::sleep_for(microseconds(50));
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// An NCCL failure as a status: misuse is INTERNAL (a bug of ours), anything
// else (network, peer, CUDA) UNAVAILABLE, i.e. retried with a new group.
absl::Status NcclFailure(const std::string& what, ncclResult_t result, ncclComm_t comm) {
  const char* detail = ncclGetLastError(comm);
  std::string message = absl::StrCat(what, ": ", ncclGetErrorString(result));
  if (detail != nullptr && detail[0] != '\0') absl::StrAppend(&message, " (", detail, ")");
  if (result == ncclInvalidArgument || result == ncclInvalidUsage) return absl::InternalError(message);
  return absl::UnavailableError(message);
}

}  // namespace

absl::StatusOr<std::string> NewNcclUniqueId() {
  ncclUniqueId id;
  const ncclResult_t result = ncclGetUniqueId(&id);
  if (result != ncclSuccess) return NcclFailure("ncclGetUniqueId", result, nullptr);
  return std::string(id.internal, NCCL_UNIQUE_ID_BYTES);
}

absl::StatusOr<std::shared_ptr<NcclCommunicator>> NcclCommunicator::Init(const std::string& unique_id, int size,
                                                                         int rank, int device,
                                                                         std::chrono::milliseconds timeout,
                                                                         const std::atomic<bool>* cancelled) {
  if (unique_id.size() != NCCL_UNIQUE_ID_BYTES) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL unique id must be ", NCCL_UNIQUE_ID_BYTES, " bytes. Given: ", unique_id.size()));
  }
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL rank must be in [0, ", size, "). Given: ", rank));
  }
  const std::string who = absl::StrCat("NCCL init on rank ", rank, " of ", size, " (device ", device, ")");
  if (IsCancelled(cancelled)) return absl::CancelledError(absl::StrCat(who, ": cancelled before it started"));

  const Clock::time_point start = Clock::now();
  CudaDeviceScope scope(device);
  if (scope.status() != cudaSuccess) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": cudaSetDevice: ", cudaGetErrorString(scope.status())));
  }
  ncclUniqueId id;
  std::memcpy(id.internal, unique_id.data(), NCCL_UNIQUE_ID_BYTES);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t raw = nullptr;
  const ncclResult_t result = ncclCommInitRankConfig(&raw, size, id, rank, &config);
  if (raw == nullptr) return NcclFailure(absl::StrCat(who, ": ncclCommInitRankConfig"), result, nullptr);

  std::shared_ptr<NcclCommunicator> comm(new NcclCommunicator(raw, size, rank, device));
  std::lock_guard<std::mutex> lock(comm->mu_);
  if (result != ncclSuccess && result != ncclInProgress) {
    return comm->FailLocked(NcclFailure(absl::StrCat(who, ": ncclCommInitRankConfig"), result, raw));
  }
  RETURN_IF_ERROR(comm->AwaitLocked("init", Await::kCommReady, nullptr, start, timeout, cancelled));
  return comm;
}

NcclCommunicator::~NcclCommunicator() {
  if (aborted_.load()) return;
  CudaDeviceScope scope(device_);
  ncclCommAbort(AsComm(comm_));
}

absl::Status NcclCommunicator::AllGather(const void* mine, size_t bytes, void* all, CudaStream stream,
                                         std::chrono::milliseconds timeout, const std::atomic<bool>* cancelled) {
  if (bytes > 0 && (mine == nullptr || all == nullptr)) {
    return absl::InvalidArgumentError(absl::StrCat(Describe("AllGather"), ": null buffer for ", bytes, " bytes"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(BeginLocked("AllGather", cancelled));
  if (bytes == 0) return absl::OkStatus();

  const Clock::time_point start = Clock::now();
  CudaDeviceScope scope(device_);
  if (scope.status() != cudaSuccess) {
    return absl::InternalError(
        absl::StrCat(Describe("AllGather"), ": cudaSetDevice: ", cudaGetErrorString(scope.status())));
  }
  const ncclResult_t result = ncclAllGather(mine, all, bytes, ncclUint8, AsComm(comm_), stream);
  if (result != ncclSuccess && result != ncclInProgress) {
    return FailLocked(NcclFailure(absl::StrCat(Describe("AllGather"), ": ncclAllGather"), result, AsComm(comm_)));
  }
  return AwaitLocked("AllGather", Await::kStreamDone, stream, start, timeout, cancelled);
}

absl::Status NcclCommunicator::RingShift(const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                                         CudaStream stream, std::chrono::milliseconds timeout,
                                         const std::atomic<bool>* cancelled) {
  if (size_ > 1) {
    return SendRecv("RingShift", (rank_ + 1) % size_, send, send_bytes, (rank_ + size_ - 1) % size_, recv, recv_bytes,
                    stream, timeout, cancelled);
  }
  // A group of one: NCCL would need one ncclSend/ncclRecv pair to itself of
  // equal sizes; a stream copy says the same with less machinery.
  if (send_bytes != recv_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(Describe("RingShift"), ": in a group of one, recv_bytes must be ",
                                                   send_bytes, " (send_bytes). Given: ", recv_bytes));
  }
  if (send_bytes > 0 && (send == nullptr || recv == nullptr)) {
    return absl::InvalidArgumentError(absl::StrCat(Describe("RingShift"), ": null buffer for ", send_bytes, " bytes"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(BeginLocked("RingShift", cancelled));
  if (send_bytes == 0) return absl::OkStatus();

  const Clock::time_point start = Clock::now();
  CudaDeviceScope scope(device_);
  const cudaError_t copied = scope.status() != cudaSuccess
                                 ? scope.status()
                                 : cudaMemcpyAsync(recv, send, send_bytes, cudaMemcpyDeviceToDevice, stream);
  if (copied != cudaSuccess) {
    return absl::InternalError(absl::StrCat(Describe("RingShift"), ": copy to self: ", cudaGetErrorString(copied)));
  }
  return AwaitLocked("RingShift", Await::kStreamDone, stream, start, timeout, cancelled);
}

absl::Status NcclCommunicator::SendRecv(const char* op, int send_to, const void* send, size_t send_bytes, int recv_from,
                                        void* recv, size_t recv_bytes, CudaStream stream,
                                        std::chrono::milliseconds timeout, const std::atomic<bool>* cancelled) {
  if (send_bytes > 0 && (send == nullptr || send_to < 0 || send_to >= size_)) {
    return absl::InvalidArgumentError(absl::StrCat(Describe(op), ": send of ", send_bytes,
                                                   " bytes needs a buffer and a rank in [0, ", size_,
                                                   "). Given rank: ", send_to));
  }
  if (recv_bytes > 0 && (recv == nullptr || recv_from < 0 || recv_from >= size_)) {
    return absl::InvalidArgumentError(absl::StrCat(Describe(op), ": receive of ", recv_bytes,
                                                   " bytes needs a buffer and a rank in [0, ", size_,
                                                   "). Given rank: ", recv_from));
  }
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(BeginLocked(op, cancelled));
  if (send_bytes == 0 && recv_bytes == 0) return absl::OkStatus();

  const Clock::time_point start = Clock::now();
  CudaDeviceScope scope(device_);
  if (scope.status() != cudaSuccess) {
    return absl::InternalError(absl::StrCat(Describe(op), ": cudaSetDevice: ", cudaGetErrorString(scope.status())));
  }
  ncclResult_t result = ncclGroupStart();
  if (result == ncclSuccess) {
    ncclResult_t sent = ncclSuccess;
    ncclResult_t received = ncclSuccess;
    if (send_bytes > 0) sent = ncclSend(send, send_bytes, ncclUint8, send_to, AsComm(comm_), stream);
    if (recv_bytes > 0) received = ncclRecv(recv, recv_bytes, ncclUint8, recv_from, AsComm(comm_), stream);
    // Always close the group: it is per-thread NCCL state.
    result = ncclGroupEnd();
    if (sent != ncclSuccess) result = sent;
    if (received != ncclSuccess) result = received;
  }
  if (result != ncclSuccess && result != ncclInProgress) {
    return FailLocked(NcclFailure(absl::StrCat(Describe(op), ": ncclSend/ncclRecv group"), result, AsComm(comm_)));
  }
  return AwaitLocked(op, Await::kStreamDone, stream, start, timeout, cancelled);
}

void NcclCommunicator::Abort() {
  abort_requested_.store(true);
  std::lock_guard<std::mutex> lock(mu_);
  AbortLocked();
}

absl::Status NcclCommunicator::BeginLocked(const char* op, const std::atomic<bool>* cancelled) {
  if (aborted_.load()) {
    return absl::UnavailableError(absl::StrCat(Describe(op),
                                               ": the communicator was aborted by an earlier failure; the "
                                               "coordinator must form the group again with a new unique id"));
  }
  if (abort_requested_.load()) {
    return FailLocked(absl::UnavailableError(absl::StrCat(Describe(op), ": the communicator is being aborted")));
  }
  // Skipping the call would leave this rank one collective behind its peers,
  // so a cancelled call ends the communicator as a failed one does.
  if (IsCancelled(cancelled)) {
    return FailLocked(absl::CancelledError(absl::StrCat(Describe(op), ": cancelled before it started")));
  }
  return absl::OkStatus();
}

absl::Status NcclCommunicator::AwaitLocked(const char* op, Await what, CudaStream stream, Clock::time_point start,
                                           std::chrono::milliseconds timeout, const std::atomic<bool>* cancelled) {
  const Clock::time_point deadline = start + timeout;
  for (;;) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t queried = ncclCommGetAsyncError(AsComm(comm_), &state);
    if (queried != ncclSuccess) state = queried;
    if (state != ncclSuccess && state != ncclInProgress) {
      return FailLocked(
          NcclFailure(absl::StrCat(Describe(op), " failed after ", MillisSince(start), " ms"), state, AsComm(comm_)));
    }
    if (state == ncclSuccess) {
      if (what == Await::kCommReady) return absl::OkStatus();
      const cudaError_t idle = cudaStreamQuery(stream);
      if (idle == cudaSuccess) {
        // An error raised while the kernel finished (proxy, network).
        const ncclResult_t last = ncclCommGetAsyncError(AsComm(comm_), &state);
        if (last != ncclSuccess) state = last;
        if (state != ncclSuccess && state != ncclInProgress) {
          return FailLocked(NcclFailure(absl::StrCat(Describe(op), " failed after ", MillisSince(start), " ms"), state,
                                        AsComm(comm_)));
        }
        return absl::OkStatus();
      }
      if (idle != cudaErrorNotReady) {
        return FailLocked(absl::InternalError(absl::StrCat(Describe(op), ": the stream failed after ",
                                                           MillisSince(start), " ms: ", cudaGetErrorString(idle))));
      }
    }
    if (abort_requested_.load()) {
      return FailLocked(absl::UnavailableError(
          absl::StrCat(Describe(op), ": aborted by another caller after ", MillisSince(start), " ms")));
    }
    if (IsCancelled(cancelled)) {
      return FailLocked(absl::CancelledError(
          absl::StrCat(Describe(op), ": cancelled after ", MillisSince(start), " ms; the communicator is aborted")));
    }
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      return FailLocked(absl::UnavailableError(
          absl::StrCat(Describe(op), ": no completion after ", MillisSince(start), " ms (timeout ", timeout.count(),
                       " ms): a peer is gone or late; the communicator is aborted")));
    }
    PollPause(now - start);
  }
}

absl::Status NcclCommunicator::FailLocked(absl::Status status) {
  AbortLocked();
  return status;
}

void NcclCommunicator::AbortLocked() {
  if (aborted_.exchange(true)) return;
  CudaDeviceScope scope(device_);
  // Blocking even in non-blocking mode; it joins a pending init or group job
  // (both poll the abort flag) and frees the communicator. Its result says
  // nothing we could act on.
  ncclCommAbort(AsComm(comm_));
}

std::string NcclCommunicator::Describe(const char* op) const {
  return absl::StrCat("NCCL ", op, " on rank ", rank_, " of ", size_, " (device ", device_, ")");
}

}  // namespace tessera
