// The forward pass's exchanges with its peers on its own backend's buffers:
// straight through the transport when both use the same memory (CPU buffers
// over gRPC, GPU buffers over NCCL), staged through host memory when a GPU
// worker's peers are reached over a host transport (gRPC, in-process).
// Correct everywhere; fast where the transport moves device memory itself.
// A ring shift may also run in flight beside the compute (the ring's next K/V
// block moving while the current one is attended).
#pragma once

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "transport/peer_transport.h"
#include "worker/backend.h"
#include "worker/tensor.h"

namespace tessera {

class PeerExchange;

// A ring shift in flight (PeerExchange::StartRingShift): on its own stream
// of the backend and its own thread, so the compute stream goes on meanwhile.
// Finish it once (PeerExchange::FinishRingShift), after which it may carry
// the next shift; destroying it unfinished waits for it.
class RingShiftInFlight {
 public:
  RingShiftInFlight() = default;
  RingShiftInFlight(RingShiftInFlight&&) = delete;
  ~RingShiftInFlight() { Join(); }

 private:
  friend class PeerExchange;
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  std::unique_ptr<OpStream> side_;  // the transfer's stream (and the staging copies')
  std::thread thread_;
  absl::Status status_;  // the transfer's, once joined
};

class PeerExchange {
 public:
  // `backend` gives the streams ring shifts in flight run on.
  PeerExchange(PeerTransport& peers, Backend& backend, OpStream& ops, BufferSpace space)
      : peers_(peers), backend_(backend), ops_(ops), space_(space) {}

  int rank() const { return peers_.rank(); }
  int size() const { return peers_.size(); }

  // Every rank contributes `mine` (packed, the same shape on every rank);
  // `all` (size() · mine.rows, mine.cols), packed, receives them in rank order.
  absl::Status AllGather(uint64_t tag, const Tensor& mine, const Tensor& all);
  // `send` (packed) to rank + 1; `recv` (packed, its shape known from the
  // shard bounds) from rank - 1.
  absl::Status RingShift(uint64_t tag, const Tensor& send, const Tensor& recv);
  // The same shift, started: it runs after everything enqueued on the pass's
  // stream so far (so `send` is written and `recv`'s last readers are done)
  // and beside what is enqueued after, which may read `send` but not touch
  // `recv` until FinishRingShift, which orders the pass's stream after it.
  // One shift in flight at a time, and no other exchange meanwhile.
  absl::Status StartRingShift(uint64_t tag, const Tensor& send, const Tensor& recv, RingShiftInFlight& shift);
  absl::Status FinishRingShift(RingShiftInFlight& shift);

 private:
  absl::Status CheckSpaces() const;
  // RingShift with its device work (staging copies, an NCCL transfer) on `ops`.
  absl::Status RingShiftOn(OpStream& ops, uint64_t tag, const Tensor& send, const Tensor& recv);

  PeerTransport& peers_;
  Backend& backend_;
  OpStream& ops_;
  BufferSpace space_;  // of the backend's buffers
};

}  // namespace tessera
