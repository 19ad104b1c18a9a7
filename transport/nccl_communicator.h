// One NCCL communicator of a worker group, with a deadline on everything.
//
// Why: an NCCL collective whose peer died never returns on its own; a worker
// must instead fail the request with UNAVAILABLE and stay up. Every operation
// here runs non-blocking (ncclConfig_t.blocking = 0), then polls the stream
// and ncclCommGetAsyncError until it completes, the deadline passes, or the
// caller's cancel flag is set; on timeout, cancellation or an NCCL error the
// communicator is aborted (ncclCommAbort) and every later call fails at once
// with UNAVAILABLE. An aborted communicator is never reused: the coordinator
// issues a fresh unique id for the group's next request.
//
// After a failed AllGather/RingShift the stream may still hold the NCCL
// kernel of the aborted call (the abort tells it to quit, but asynchronously),
// and that kernel may still touch the call's buffers. The caller must not
// synchronize the stream, nor free or reuse those buffers, except in stream
// order (cudaFreeAsync on that stream); the simplest is to drop the stream
// (cudaStreamDestroy returns at once) along with the request.
//
// The unique id (ncclGetUniqueId, 128 bytes) is created by one process (the
// group's rank-0 worker, asked by the coordinator) and handed to every rank.
// Ranks are one per GPU: two ranks of one group on one device is not
// supported by NCCL.
//
// Threads: calls on one communicator are serialized by an internal mutex
// (NCCL requires one issuing thread at a time); all ranks must issue the same
// collectives in the same order. Any thread may call: each call first makes
// the communicator's device current (and restores the caller's after).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/cuda_stream.h"

namespace tessera {

// A fresh ncclUniqueId as bytes (starts the bootstrap root in this process).
absl::StatusOr<std::string> NewNcclUniqueId();

class NcclCommunicator {
 public:
  // Joins the group named by `unique_id` as `rank` of `size` on CUDA device
  // `device`. All ranks call this concurrently. UNAVAILABLE if the group does
  // not form within `timeout`; CANCELLED if *cancelled becomes true first;
  // INVALID_ARGUMENT for an id that is not NCCL_UNIQUE_ID_BYTES long or a
  // rank outside [0, size).
  static absl::StatusOr<std::shared_ptr<NcclCommunicator>> Init(const std::string& unique_id, int size, int rank,
                                                                int device, std::chrono::milliseconds timeout,
                                                                const std::atomic<bool>* cancelled = nullptr);
  // ncclCommAbort, unless already aborted. Not ncclCommDestroy: without a
  // prior finalize it waits in an intra-node barrier for every local rank of
  // the group, which a worker dropping its communicator cannot promise.
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }
  bool aborted() const { return aborted_.load(); }

  // ncclAllGather of `bytes` per rank into `all` (size · bytes), on `stream`;
  // returns when it completed (see the file comment for failures). Every rank
  // passes the same `bytes`; 0 bytes is a no-op on every rank.
  absl::Status AllGather(const void* mine, size_t bytes, void* all, CudaStream stream,
                         std::chrono::milliseconds timeout, const std::atomic<bool>* cancelled);
  // ncclSend to rank + 1 and ncclRecv from rank - 1 in one group call. Byte
  // counts may differ between ranks (each side knows both); a direction with
  // 0 bytes is left out on both of its ends. A group of one copies `send` to
  // `recv` on the stream, so there send_bytes must equal recv_bytes.
  absl::Status RingShift(const void* send, size_t send_bytes, void* recv, size_t recv_bytes, CudaStream stream,
                         std::chrono::milliseconds timeout, const std::atomic<bool>* cancelled);

  // Aborts the communicator (idempotent); later calls fail with UNAVAILABLE.
  // A call in flight on another thread notices within a millisecond or so,
  // aborts and returns UNAVAILABLE; Abort returns once that happened.
  void Abort();

 private:
  using Clock = std::chrono::steady_clock;

  NcclCommunicator(void* comm, int size, int rank, int device)
      : comm_(comm), size_(size), rank_(rank), device_(device) {}

  // One NCCL group call: ncclSend of `send_bytes` to rank `send_to` and
  // ncclRecv of `recv_bytes` from rank `recv_from`; a side with 0 bytes is
  // left out. `op` names the operation in errors.
  absl::Status SendRecv(const char* op, int send_to, const void* send, size_t send_bytes, int recv_from, void* recv,
                        size_t recv_bytes, CudaStream stream, std::chrono::milliseconds timeout,
                        const std::atomic<bool>* cancelled);

  // What AwaitLocked waits for after an enqueue.
  enum class Await {
    kCommReady,   // ncclCommGetAsyncError leaves ncclInProgress (init)
    kStreamDone,  // that, then cudaStreamQuery(stream) reports the work done
  };
  // The common start of an operation: fails at once when aborted, aborts
  // and returns CANCELLED when *cancelled is already set.
  absl::Status BeginLocked(const char* op, const std::atomic<bool>* cancelled);
  // Polls until `what` happened; on an error, the deadline (start + timeout),
  // *cancelled or an Abort() request, aborts and returns why.
  absl::Status AwaitLocked(const char* op, Await what, CudaStream stream, Clock::time_point start,
                           std::chrono::milliseconds timeout, const std::atomic<bool>* cancelled);
  // Aborts, then returns `status` (built before the abort: NCCL's error text
  // is gone after it).
  absl::Status FailLocked(absl::Status status);
  void AbortLocked();
  // "NCCL <op> on rank r of n (device d)", the start of every message.
  std::string Describe(const char* op) const;

  void* comm_;  // ncclComm_t; never touched after the abort
  int size_;
  int rank_;
  int device_;
  std::atomic<bool> aborted_{false};
  std::atomic<bool> abort_requested_{false};  // Abort() waiting for a call in flight
  std::mutex mu_;                             // one issuing thread at a time
};

}  // namespace tessera
