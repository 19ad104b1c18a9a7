// The workers that hold shards of one request, as seen by one of them. The
// forward pass needs only what crosses a shard boundary (DESIGN.md): an
// all-gather of small per-shard summaries (conv tails, SSD (Λ, S)) and a ring
// shift of K/V blocks. Implementations: in-process (tests), gRPC/TCP between
// CPU workers, NCCL between GPUs. Every call fails with UNAVAILABLE instead of
// hanging when a peer is gone or the request is cancelled.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace tessera {

class DeviceExchange;

class PeerGroup {
 public:
  virtual ~PeerGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Sends a block to rank `to` under `tag`. Does not wait for the receiver.
  virtual absl::Status Send(int to, uint64_t tag, absl::Span<const float> data) = 0;
  // Waits for the block rank `from` sent under `tag`.
  virtual absl::StatusOr<std::vector<float>> Recv(int from, uint64_t tag) = 0;

  // Every rank contributes `mine`; returns all contributions in rank order.
  virtual absl::StatusOr<std::vector<std::vector<float>>> AllGather(uint64_t tag, absl::Span<const float> mine);
  // Sends `mine` to rank+1 and returns what rank-1 sent (around the ring).
  virtual absl::StatusOr<std::vector<float>> RingShift(uint64_t tag, absl::Span<const float> mine);

  // The same exchanges on device memory, when this transport moves device
  // buffers itself (NCCL); null when it moves host memory only (the CUDA
  // forward pass then stages through the host methods above).
  virtual DeviceExchange* device_exchange() { return nullptr; }
};

// Tags name an exchange within one request: which block, which kind, which step.
enum class ExchangeKind : uint64_t { kConvTail = 0, kSsdSummary = 1, kRingKv = 2 };
inline uint64_t ExchangeTag(int64_t block, ExchangeKind kind, int64_t step = 0) {
  return (static_cast<uint64_t>(block) << 20) | (static_cast<uint64_t>(kind) << 16) | static_cast<uint64_t>(step);
}

}  // namespace tessera
