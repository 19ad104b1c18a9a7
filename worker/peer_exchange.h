// The forward pass's exchanges with its peers on its own backend's buffers:
// straight through the transport when both use the same memory (CPU buffers
// over gRPC, GPU buffers over NCCL), staged through host memory when a GPU
// worker's peers are reached over a host transport (gRPC, in-process).
// Correct everywhere; fast where the transport moves device memory itself.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "transport/peer_transport.h"
#include "worker/backend.h"
#include "worker/tensor.h"

namespace tessera {

class PeerExchange {
 public:
  PeerExchange(PeerTransport& peers, OpStream& ops, BufferSpace space) : peers_(peers), ops_(ops), space_(space) {}

  int rank() const { return peers_.rank(); }
  int size() const { return peers_.size(); }

  // Every rank contributes `mine` (packed, the same shape on every rank);
  // `all` (size() · mine.rows, mine.cols), packed, receives them in rank order.
  absl::Status AllGather(uint64_t tag, const Tensor& mine, const Tensor& all);
  // `send` (packed) to rank + 1; `recv` (packed, its shape known from the
  // shard bounds) from rank - 1.
  absl::Status RingShift(uint64_t tag, const Tensor& send, const Tensor& recv);

 private:
  absl::Status CheckSpaces() const;

  PeerTransport& peers_;
  OpStream& ops_;
  BufferSpace space_;  // of the backend's buffers
};

}  // namespace tessera
