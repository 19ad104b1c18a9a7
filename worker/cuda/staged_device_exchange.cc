// The host PeerGroup moves floats; device blocks are staged as whole floats
// (byte counts of the forward pass are multiples of 4: fp32 rows, or bf16
// rows of an even width).
#include "worker/cuda/staged_device_exchange.h"

#include <cuda_runtime_api.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/cuda/cuda_status.h"

namespace tessera::cuda_engine {
namespace {

absl::StatusOr<std::vector<float>> ToHost(const void* device, size_t bytes, cudaStream_t stream) {
  if (bytes % sizeof(float) != 0) {
    return absl::InternalError(absl::StrCat("staged exchange of ", bytes, " bytes: not whole floats"));
  }
  std::vector<float> host(bytes / sizeof(float));
  RETURN_IF_ERROR(CudaStatus("staged exchange (device to host)",
                             cudaMemcpyAsync(host.data(), device, bytes, cudaMemcpyDeviceToHost, stream)));
  RETURN_IF_ERROR(CudaStatus("staged exchange", cudaStreamSynchronize(stream)));
  return host;
}

absl::Status ToDevice(const std::vector<float>& host, size_t expected_bytes, void* device, cudaStream_t stream,
                      int from) {
  if (host.size() * sizeof(float) != expected_bytes) {
    return absl::InternalError(absl::StrCat("block from shard ", from, " has ", host.size() * sizeof(float),
                                            " bytes, expected ", expected_bytes));
  }
  RETURN_IF_ERROR(CudaStatus("staged exchange (host to device)",
                             cudaMemcpyAsync(device, host.data(), expected_bytes, cudaMemcpyHostToDevice, stream)));
  return CudaStatus("staged exchange", cudaStreamSynchronize(stream));  // `host` dies on return
}

}  // namespace

absl::Status StagedDeviceExchange::AllGather(uint64_t tag, const void* mine, size_t bytes, void* all,
                                             CudaStream stream) {
  ASSIGN_OR_RETURN(std::vector<float> host, ToHost(mine, bytes, stream));
  ASSIGN_OR_RETURN(std::vector<std::vector<float>> gathered, peers_.AllGather(tag, host));
  for (size_t r = 0; r < gathered.size(); ++r) {
    RETURN_IF_ERROR(ToDevice(gathered[r], bytes, static_cast<uint8_t*>(all) + r * bytes, stream, static_cast<int>(r)));
  }
  return absl::OkStatus();
}

absl::Status StagedDeviceExchange::RingShift(uint64_t tag, const void* send, size_t send_bytes, void* recv,
                                             size_t recv_bytes, CudaStream stream) {
  ASSIGN_OR_RETURN(std::vector<float> host, ToHost(send, send_bytes, stream));
  ASSIGN_OR_RETURN(std::vector<float> received, peers_.RingShift(tag, host));
  const int from = (peers_.rank() - 1 + peers_.size()) % peers_.size();
  return ToDevice(received, recv_bytes, recv, stream, from);
}

}  // namespace tessera::cuda_engine
