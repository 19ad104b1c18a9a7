// PeerGroup between GPU workers over NCCL, for one request: the device
// exchanges of the CUDA forward pass go straight through the group's
// communicator (DeviceExchange); the host methods stage through device
// buffers, so code written against PeerGroup works unchanged.
//
// Failures: UNAVAILABLE when a collective does not complete within `timeout`
// (the communicator is aborted: see nccl_communicator.h), CANCELLED when
// *cancelled is set meanwhile. Tags are not needed by NCCL (ordering is), but
// are checked to be identical on both sides of host Send/Recv pairs.
//
// Host Send differs from PeerGroup's contract in one way: an NCCL send
// completes only once the receiver takes part, so Send returns when the
// matching Recv on rank `to` has received the block (or fails after
// `timeout`). Two ranks must therefore not both Send to each other before
// either Recvs; AllGather and RingShift are overridden, so PeerGroup's
// Send-then-Recv defaults are never used here. Send/Recv to oneself go
// through a local inbox, without NCCL.
//
// One caller at a time per group: the host methods share a private stream.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/device_exchange.h"
#include "worker/nccl/nccl_communicator.h"
#include "worker/peer_group.h"

namespace tessera {

class NcclPeerGroup final : public PeerGroup, public DeviceExchange {
 public:
  // `comm` must not be null; it may be shared with other requests of the
  // same worker group, one at a time.
  NcclPeerGroup(std::shared_ptr<NcclCommunicator> comm, std::chrono::milliseconds timeout,
                const std::atomic<bool>* cancelled);
  ~NcclPeerGroup() override;  // drops the private stream (never waits on it)

  int rank() const override;
  int size() const override;
  // Host staging: not used by the CUDA forward pass, kept for completeness.
  // Send/Recv exchange a 16-byte header (tag, element count) first.
  absl::Status Send(int to, uint64_t tag, absl::Span<const float> data) override;
  absl::StatusOr<std::vector<float>> Recv(int from, uint64_t tag) override;
  // Lengths may differ per rank: the lengths are all-gathered first, then
  // every contribution padded to the longest.
  absl::StatusOr<std::vector<std::vector<float>>> AllGather(uint64_t tag, absl::Span<const float> mine) override;
  // Lengths may differ per rank: the lengths are ring-shifted first.
  absl::StatusOr<std::vector<float>> RingShift(uint64_t tag, absl::Span<const float> mine) override;
  DeviceExchange* device_exchange() override { return this; }

  absl::Status AllGather(uint64_t tag, const void* mine, size_t bytes, void* all, CudaStream stream) override;
  absl::Status RingShift(uint64_t tag, const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                         CudaStream stream) override;

  // Bytes this rank handed to NCCL for other ranks (AllGather: bytes per
  // peer; RingShift and Send: what it sends), host staging headers included.
  int64_t bytes_sent() const { return bytes_sent_.load(); }

 private:
  // The communicator calls, counting bytes_sent_.
  absl::Status GatherBytes(const void* mine, size_t bytes, void* all, CudaStream stream);
  absl::Status ShiftBytes(const void* send, size_t send_bytes, void* recv, size_t recv_bytes, CudaStream stream);

  std::shared_ptr<NcclCommunicator> comm_;
  std::chrono::milliseconds timeout_;
  const std::atomic<bool>* cancelled_;
  std::atomic<int64_t> bytes_sent_{0};
  CudaStream stream_ = nullptr;  // private, non-blocking; host staging only
  absl::Status stream_status_;   // why stream_ could not be created
  std::mutex self_mu_;
  std::map<uint64_t, std::deque<std::vector<float>>> self_inbox_;  // Send to oneself, by tag
};

// The communicators a worker holds, one per worker group, by the group id the
// coordinator gave. A group's communicator is created on its first request
// (every rank joins with the same unique id) and kept while it works; one
// that was aborted is dropped, and a request naming that group again with the
// same unique id fails with UNAVAILABLE (ids are single-use). A request with
// a new unique id replaces the group's communicator (requests still holding
// the old one keep it until they finish).
class NcclGroups {
 public:
  explicit NcclGroups(int device) : device_(device) {}
  // Concurrent calls for one group wait for a single Init (within their own
  // `timeout` and *cancelled); calls for other groups never wait on it.
  // FAILED_PRECONDITION when the cached communicator of `unique_id` has
  // another size or rank.
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> GetOrJoin(const std::string& group_id, const std::string& unique_id,
                                                              int size, int rank, std::chrono::milliseconds timeout,
                                                              const std::atomic<bool>* cancelled);
  int device() const { return device_; }

 private:
  // Ids of dropped or failed communicators remembered per group.
  static constexpr size_t kSpentIdsKept = 64;

  // One group. join_mu is held while the group's communicator is looked up or
  // formed, so concurrent requests for the group share one Init; the fields
  // below it are guarded by it.
  struct Entry {
    std::timed_mutex join_mu;
    std::string unique_id;                   // of comm
    std::shared_ptr<NcclCommunicator> comm;  // null before the first join
    std::deque<std::string> spent_ids;       // single-use ids already consumed, oldest first
  };

  int device_;
  std::mutex mu_;                                         // guards the map only, never held across Init
  std::map<std::string, std::shared_ptr<Entry>> groups_;  // by group id
};

}  // namespace tessera
