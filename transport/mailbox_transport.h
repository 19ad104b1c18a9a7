// The collectives of a transport whose primitive is "post a block into rank
// r's mailbox" (in-process, gRPC): AllGather and RingShift over Post/Take,
// written once. Post does not wait for the receiver, so every rank may post
// all it sends before it takes what it receives. Host memory only.
//
// A ring block longer than ring_piece_bytes() travels as consecutive pieces
// of that size (tags PieceTag(tag, i)): a shard's whole K/V of a layer (a
// prefill in rounds sends all a shard holds: 2 GB for 512K tokens of the 8B
// shapes) is more than one gRPC message may carry (a worker receives 1 GiB at
// most, network_limits.h; protobuf 2 GiB). Sender and receiver cut it alike,
// each knowing the block's size from the shard plan.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "transport/peer_transport.h"

namespace tessera {

class MailboxTransport : public PeerTransport {
 public:
  BufferSpace space() const final { return BufferSpace::kHost; }
  absl::Status AllGather(uint64_t tag, const void* mine, size_t bytes, void* all, CudaStream stream) final;
  absl::Status RingShift(uint64_t tag, const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                         CudaStream stream) final;

  // The longest piece of a ring block (default kRingPieceBytes); tests shrink it.
  static constexpr size_t kRingPieceBytes = size_t{256} << 20;
  size_t ring_piece_bytes() const { return ring_piece_bytes_; }
  void set_ring_piece_bytes(size_t bytes) { ring_piece_bytes_ = bytes < 1 ? 1 : bytes; }

 protected:
  // Delivers `block` to rank `to` under `tag` without waiting for it to be taken.
  virtual absl::Status Post(int to, uint64_t tag, std::string block) = 0;
  // Waits for the block rank `from` posted to this rank under `tag`.
  virtual absl::StatusOr<std::string> Take(int from, uint64_t tag) = 0;

 private:
  size_t ring_piece_bytes_ = kRingPieceBytes;
};

}  // namespace tessera
