// K/V growth doubles capacity, so a long decode reallocates O(log n) times.
#include "worker/cuda/cuda_shard_state.h"

#include <algorithm>

#include "common/status_macros.h"

namespace tessera::cuda_engine {

int64_t CudaShardState::MemoryBytes() const {
  int64_t bytes = 0;
  for (const DeviceKv& kv : attention) bytes += static_cast<int64_t>(kv.k.bytes() + kv.v.bytes());
  for (const DeviceMambaState& m : mamba) bytes += static_cast<int64_t>(m.conv.bytes() + m.ssm.bytes());
  return bytes;
}

absl::Status CudaShardState::ReserveKv(int64_t more, cudaStream_t stream) {
  for (DeviceKv& kv : attention) {
    const int64_t needed = kv.tokens + more;
    if (needed <= kv.capacity) continue;
    const int64_t capacity = std::max({needed, 2 * kv.capacity, capacity_hint_});
    ASSIGN_OR_RETURN(DeviceBuffer k, DeviceBuffer::Allocate(capacity * kv_row_bytes_));
    ASSIGN_OR_RETURN(DeviceBuffer v, DeviceBuffer::Allocate(capacity * kv_row_bytes_));
    if (kv.tokens > 0) {
      RETURN_IF_ERROR(CudaStatus("K/V growth", cudaMemcpyAsync(k.get(), kv.k.get(), kv.tokens * kv_row_bytes_,
                                                               cudaMemcpyDeviceToDevice, stream)));
      RETURN_IF_ERROR(CudaStatus("K/V growth", cudaMemcpyAsync(v.get(), kv.v.get(), kv.tokens * kv_row_bytes_,
                                                               cudaMemcpyDeviceToDevice, stream)));
      RETURN_IF_ERROR(CudaStatus("K/V growth", cudaStreamSynchronize(stream)));
    }
    kv.k = std::move(k);
    kv.v = std::move(v);
    kv.capacity = capacity;
  }
  return absl::OkStatus();
}

}  // namespace tessera::cuda_engine
