// What crosses a shard boundary, as one worker of a request sees it
// (DESIGN.md): an all-gather of small per-shard summaries (conv tails, SSD
// (log Λ, S)), a ring shift of K/V blocks, and split-KV attention queries to
// the other workers holding the request's K/V. One interface for every
// transport in this folder: in-process (threads of one process), gRPC (CPU
// workers, and every worker's split-KV decode) and NCCL (GPU workers' prefill).
//
// Buffers live where space() says: host memory (gRPC, in-process) or device
// memory (NCCL). The forward pass stages device buffers through the host for
// a host transport (worker/peer_exchange.h); a transport never copies between
// spaces itself.
//
// Every call fails instead of hanging: UNAVAILABLE when a peer does not take
// part within the transport's timeout (the transport is then unusable for the
// rest of the request), CANCELLED when the request is cancelled meanwhile.
// Every rank of a group makes the same calls in the same order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/cuda_stream.h"

namespace tessera {

// One shard's attention result for a query: output and log-sum-exp, fp32 host.
struct AttentionPartial {
  std::vector<float> out;  // (q_len, Hq, D)
  std::vector<float> lse;  // (q_len, Hq)
};

// Where a transport's AllGather/RingShift buffers must live.
enum class BufferSpace { kHost, kDevice };

// Tags name an exchange within one request: which block, which kind, which
// step (a ring step: below 256, the most shards a request has). Transports
// that match messages by tag (gRPC, in-process) use it, and may carry a long
// block as several under PieceTag; ordered ones (NCCL) ignore it.
enum class ExchangeKind : uint64_t { kConvTail = 0, kSsdSummary = 1, kRingKv = 2 };
inline uint64_t ExchangeTag(int64_t block, ExchangeKind kind, int64_t step = 0) {
  return (static_cast<uint64_t>(block) << 20) | (static_cast<uint64_t>(kind) << 16) | static_cast<uint64_t>(step);
}
// Piece `piece` (< kMaxTagPieces) of the block sent under `tag`: piece 0 is the tag itself.
inline constexpr uint64_t kMaxTagPieces = 256;
inline uint64_t PieceTag(uint64_t tag, uint64_t piece) { return tag | (piece << 8); }

class PeerTransport {
 public:
  virtual ~PeerTransport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual BufferSpace space() const = 0;

  // Every rank contributes `bytes` at `mine` (the same count on every rank);
  // `all` (size() · bytes) receives the contributions in rank order. `stream`
  // orders device buffers (BufferSpace::kDevice); host transports ignore it.
  // Returns once the exchange completed on this rank.
  virtual absl::Status AllGather(uint64_t tag, const void* mine, size_t bytes, void* all, CudaStream stream) = 0;

  // Sends `send_bytes` at `send` to rank + 1 and receives `recv_bytes` from
  // rank - 1 into `recv` (around the ring; each side knows both sizes from the
  // shard bounds). `send` and `recv` must not overlap.
  virtual absl::Status RingShift(uint64_t tag, const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                                 CudaStream stream) = 0;

  // Split-KV decode, the asking side: attention of `q` ((q_len, Hq, D) fp32,
  // rows at global positions q_position0, ...) over the K/V of attention
  // layer `attention_slot` that every other rank holds for this request; one
  // partial per other rank, in rank order.
  virtual absl::StatusOr<std::vector<AttentionPartial>> QueryKv(int64_t attention_slot, absl::Span<const float> q,
                                                                int64_t q_len, int64_t q_position0) = 0;
};

}  // namespace tessera
