// The collectives of a transport whose primitive is "post a block into rank
// r's mailbox" (in-process, gRPC): AllGather and RingShift over Post/Take,
// written once. Post does not wait for the receiver, so every rank may post
// all it sends before it takes what it receives. Host memory only.
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

 protected:
  // Delivers `block` to rank `to` under `tag` without waiting for it to be taken.
  virtual absl::Status Post(int to, uint64_t tag, std::string block) = 0;
  // Waits for the block rank `from` posted to this rank under `tag`.
  virtual absl::StatusOr<std::string> Take(int from, uint64_t tag) = 0;
};

}  // namespace tessera
