// Exchanges of device memory between the workers that hold shards of one
// request: what the CUDA forward pass sends across a shard boundary (conv
// tails, SSD summaries, K/V blocks), without a trip through host memory when
// the transport can move device buffers itself (NCCL). Each call enqueues its
// transfers on `stream` and returns once they have completed on this rank, or
// fails: UNAVAILABLE when a peer does not take part within the transport's
// timeout (the transport is then unusable for the rest of the request),
// CANCELLED when the request is cancelled meanwhile. Every rank of the group
// makes the same calls in the same order (the forward pass guarantees it).
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"

namespace tessera {

class DeviceExchange {
 public:
  virtual ~DeviceExchange() = default;

  // Every rank contributes `bytes` at `mine` (the same byte count on every
  // rank); `all` (size() · bytes) receives the contributions in rank order.
  virtual absl::Status AllGather(uint64_t tag, const void* mine, size_t bytes, void* all, CudaStream stream) = 0;

  // Sends `send_bytes` at `send` to rank + 1 and receives `recv_bytes` from
  // rank - 1 into `recv` (around the ring; sizes may differ between ranks,
  // each side knows both from the shard bounds). `send` and `recv` must not
  // overlap.
  virtual absl::Status RingShift(uint64_t tag, const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                                 CudaStream stream) = 0;
};

}  // namespace tessera
