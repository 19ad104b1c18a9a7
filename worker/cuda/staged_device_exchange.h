// DeviceExchange over a transport that moves host memory (gRPC between
// workers, or the in-process group of tests): device → host, the
// PeerGroup's host exchange, host → device. What a GPU worker uses when its
// peers are not on NCCL; correct everywhere, fast nowhere.
#pragma once

#include "worker/device_exchange.h"
#include "worker/peer_group.h"

namespace tessera::cuda_engine {

class StagedDeviceExchange final : public DeviceExchange {
 public:
  explicit StagedDeviceExchange(PeerGroup& peers) : peers_(peers) {}
  absl::Status AllGather(uint64_t tag, const void* mine, size_t bytes, void* all, CudaStream stream) override;
  absl::Status RingShift(uint64_t tag, const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                         CudaStream stream) override;

 private:
  PeerGroup& peers_;
};

}  // namespace tessera::cuda_engine
