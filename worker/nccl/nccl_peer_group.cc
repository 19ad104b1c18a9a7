// NcclPeerGroup: device exchanges go straight to the communicator; host
// exchanges copy into stream-ordered device buffers on a private stream, run
// the same communicator calls, and copy back.
//
// Why stream-ordered buffers (cudaMallocAsync / cudaFreeAsync): after a failed
// call the private stream may still hold the aborted NCCL kernel, which may
// still touch the staging buffers; freeing in stream order releases them only
// after it, and never blocks the host on a kernel that is slow to quit.
#include "worker/nccl/nccl_peer_group.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/nccl/cuda_device_scope.h"

namespace tessera {
namespace {

absl::Status CudaCheck(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("NCCL host staging: ", what, ": ", cudaGetErrorString(error)));
}

// A device allocation on `stream`, freed in stream order.
class StagingBuffer {
 public:
  explicit StagingBuffer(CudaStream stream) : stream_(stream) {}
  ~StagingBuffer() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  StagingBuffer(const StagingBuffer&) = delete;
  StagingBuffer& operator=(const StagingBuffer&) = delete;

  absl::Status Allocate(size_t bytes) {
    return CudaCheck(cudaMallocAsync(&ptr_, std::max<size_t>(bytes, 1), stream_), "cudaMallocAsync");
  }
  char* at(size_t byte_offset) const { return static_cast<char*>(ptr_) + byte_offset; }

 private:
  CudaStream stream_;
  void* ptr_ = nullptr;
};

// Host → device, in stream order (the copy from pageable memory returns once
// the source has been read).
absl::Status Upload(void* device, const void* host, size_t bytes, CudaStream stream) {
  if (bytes == 0) return absl::OkStatus();
  return CudaCheck(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream), "copy to device");
}

// Device → host, waiting for it. Only called once the communicator call
// before it completed, so the stream holds nothing else.
absl::Status Download(void* host, const void* device, size_t bytes, CudaStream stream) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CudaCheck(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream), "copy to host"));
  return CudaCheck(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

// A Send/Recv header: which exchange, and how many floats follow.
struct BlockHeader {
  uint64_t tag;
  uint64_t count;
};
static_assert(sizeof(BlockHeader) == 16);

// Lengths larger than this come from a corrupt header, not from a model.
constexpr uint64_t kMaxFloats = uint64_t{1} << 36;

}  // namespace

NcclPeerGroup::NcclPeerGroup(std::shared_ptr<NcclCommunicator> comm, std::chrono::milliseconds timeout,
                             const std::atomic<bool>* cancelled)
    : comm_(std::move(comm)), timeout_(timeout), cancelled_(cancelled) {
  assert(comm_ != nullptr);
  CudaDeviceScope scope(comm_->device());
  cudaStream_t stream = nullptr;
  const cudaError_t created =
      scope.status() != cudaSuccess ? scope.status() : cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  stream_status_ = CudaCheck(created, "cudaStreamCreateWithFlags");
  if (created == cudaSuccess) stream_ = stream;
}

NcclPeerGroup::~NcclPeerGroup() {
  if (stream_ == nullptr) return;
  CudaDeviceScope scope(comm_->device());
  cudaStreamDestroy(stream_);
}

int NcclPeerGroup::rank() const { return comm_->rank(); }
int NcclPeerGroup::size() const { return comm_->size(); }

absl::Status NcclPeerGroup::GatherBytes(const void* mine, size_t bytes, void* all, CudaStream stream) {
  RETURN_IF_ERROR(comm_->AllGather(mine, bytes, all, stream, timeout_, cancelled_));
  bytes_sent_ += static_cast<int64_t>(bytes) * (size() - 1);
  return absl::OkStatus();
}

absl::Status NcclPeerGroup::ShiftBytes(const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                                       CudaStream stream) {
  RETURN_IF_ERROR(comm_->RingShift(send, send_bytes, recv, recv_bytes, stream, timeout_, cancelled_));
  if (size() > 1) bytes_sent_ += static_cast<int64_t>(send_bytes);
  return absl::OkStatus();
}

absl::Status NcclPeerGroup::AllGather(uint64_t tag, const void* mine, size_t bytes, void* all, CudaStream stream) {
  return GatherBytes(mine, bytes, all, stream);
}

absl::Status NcclPeerGroup::RingShift(uint64_t tag, const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                                      CudaStream stream) {
  return ShiftBytes(send, send_bytes, recv, recv_bytes, stream);
}

absl::StatusOr<std::vector<std::vector<float>>> NcclPeerGroup::AllGather(uint64_t tag, absl::Span<const float> mine) {
  RETURN_IF_ERROR(stream_status_);
  const size_t n = static_cast<size_t>(size());
  CudaDeviceScope scope(comm_->device());
  RETURN_IF_ERROR(CudaCheck(scope.status(), "cudaSetDevice"));

  // Lengths first, so that every rank can pad to the longest.
  StagingBuffer lengths(stream_);  // (1 + n) uint64: mine, then every rank's
  RETURN_IF_ERROR(lengths.Allocate((1 + n) * sizeof(uint64_t)));
  const uint64_t my_count = mine.size();
  RETURN_IF_ERROR(Upload(lengths.at(0), &my_count, sizeof(uint64_t), stream_));
  RETURN_IF_ERROR(GatherBytes(lengths.at(0), sizeof(uint64_t), lengths.at(sizeof(uint64_t)), stream_));
  std::vector<uint64_t> counts(n);  // (n)
  RETURN_IF_ERROR(Download(counts.data(), lengths.at(sizeof(uint64_t)), n * sizeof(uint64_t), stream_));

  const uint64_t longest = *std::max_element(counts.begin(), counts.end());
  std::vector<std::vector<float>> all(n);
  if (longest == 0) return all;
  if (longest > kMaxFloats / (1 + n)) {
    return absl::InternalError(absl::StrCat("NCCL host AllGather: a rank reported ", longest, " floats"));
  }
  StagingBuffer payload(stream_);  // (1 + n, longest) floats: mine padded, then every rank's
  const size_t row_bytes = longest * sizeof(float);
  RETURN_IF_ERROR(payload.Allocate((1 + n) * row_bytes));
  RETURN_IF_ERROR(CudaCheck(cudaMemsetAsync(payload.at(0), 0, row_bytes, stream_), "cudaMemsetAsync"));
  RETURN_IF_ERROR(Upload(payload.at(0), mine.data(), mine.size() * sizeof(float), stream_));
  RETURN_IF_ERROR(GatherBytes(payload.at(0), row_bytes, payload.at(row_bytes), stream_));
  std::vector<float> gathered(n * longest);  // (n, longest)
  RETURN_IF_ERROR(Download(gathered.data(), payload.at(row_bytes), n * row_bytes, stream_));
  for (size_t r = 0; r < n; ++r) {
    const auto row = gathered.begin() + static_cast<std::ptrdiff_t>(r * longest);
    all[r].assign(row, row + static_cast<std::ptrdiff_t>(counts[r]));
  }
  return all;
}

absl::StatusOr<std::vector<float>> NcclPeerGroup::RingShift(uint64_t tag, absl::Span<const float> mine) {
  RETURN_IF_ERROR(stream_status_);
  CudaDeviceScope scope(comm_->device());
  RETURN_IF_ERROR(CudaCheck(scope.status(), "cudaSetDevice"));

  // Lengths first: the receiver does not know what rank - 1 holds.
  StagingBuffer lengths(stream_);  // 2 uint64: what I send, what I receive
  RETURN_IF_ERROR(lengths.Allocate(2 * sizeof(uint64_t)));
  const uint64_t send_count = mine.size();
  RETURN_IF_ERROR(Upload(lengths.at(0), &send_count, sizeof(uint64_t), stream_));
  RETURN_IF_ERROR(ShiftBytes(lengths.at(0), sizeof(uint64_t), lengths.at(sizeof(uint64_t)), sizeof(uint64_t), stream_));
  uint64_t recv_count = 0;
  RETURN_IF_ERROR(Download(&recv_count, lengths.at(sizeof(uint64_t)), sizeof(uint64_t), stream_));
  if (recv_count > kMaxFloats) {
    return absl::InternalError(absl::StrCat("NCCL host RingShift: rank ", (rank() + size() - 1) % size(), " reported ",
                                            recv_count, " floats"));
  }

  const size_t send_bytes = send_count * sizeof(float);
  const size_t recv_bytes = recv_count * sizeof(float);
  StagingBuffer payload(stream_);  // (send_count) floats, then (recv_count) floats
  RETURN_IF_ERROR(payload.Allocate(send_bytes + recv_bytes));
  RETURN_IF_ERROR(Upload(payload.at(0), mine.data(), send_bytes, stream_));
  RETURN_IF_ERROR(ShiftBytes(payload.at(0), send_bytes, payload.at(send_bytes), recv_bytes, stream_));
  std::vector<float> received(recv_count);
  RETURN_IF_ERROR(Download(received.data(), payload.at(send_bytes), recv_bytes, stream_));
  return received;
}

absl::Status NcclPeerGroup::Send(int to, uint64_t tag, absl::Span<const float> data) {
  if (to < 0 || to >= size()) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL host Send: rank must be in [0, ", size(), "). Given: ", to));
  }
  if (to == rank()) {
    std::lock_guard<std::mutex> lock(self_mu_);
    self_inbox_[tag].emplace_back(data.begin(), data.end());
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(stream_status_);
  CudaDeviceScope scope(comm_->device());
  RETURN_IF_ERROR(CudaCheck(scope.status(), "cudaSetDevice"));

  const BlockHeader header{tag, data.size()};
  const size_t payload_bytes = data.size() * sizeof(float);
  StagingBuffer staging(stream_);  // header, then (data.size()) floats
  RETURN_IF_ERROR(staging.Allocate(sizeof(header) + payload_bytes));
  RETURN_IF_ERROR(Upload(staging.at(0), &header, sizeof(header), stream_));
  RETURN_IF_ERROR(Upload(staging.at(sizeof(header)), data.data(), payload_bytes, stream_));
  RETURN_IF_ERROR(
      comm_->SendRecv("Send", to, staging.at(0), sizeof(header), -1, nullptr, 0, stream_, timeout_, cancelled_));
  bytes_sent_ += sizeof(header);
  RETURN_IF_ERROR(comm_->SendRecv("Send", to, staging.at(sizeof(header)), payload_bytes, -1, nullptr, 0, stream_,
                                  timeout_, cancelled_));
  bytes_sent_ += static_cast<int64_t>(payload_bytes);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> NcclPeerGroup::Recv(int from, uint64_t tag) {
  if (from < 0 || from >= size()) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL host Recv: rank must be in [0, ", size(), "). Given: ", from));
  }
  if (from == rank()) {
    std::lock_guard<std::mutex> lock(self_mu_);
    auto it = self_inbox_.find(tag);
    if (it == self_inbox_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("NCCL host Recv: rank ", from, " has sent itself nothing under tag ", tag));
    }
    std::vector<float> block = std::move(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) self_inbox_.erase(it);
    return block;
  }
  RETURN_IF_ERROR(stream_status_);
  CudaDeviceScope scope(comm_->device());
  RETURN_IF_ERROR(CudaCheck(scope.status(), "cudaSetDevice"));

  StagingBuffer staging(stream_);  // header
  RETURN_IF_ERROR(staging.Allocate(sizeof(BlockHeader)));
  RETURN_IF_ERROR(
      comm_->SendRecv("Recv", -1, nullptr, 0, from, staging.at(0), sizeof(BlockHeader), stream_, timeout_, cancelled_));
  BlockHeader header{};
  RETURN_IF_ERROR(Download(&header, staging.at(0), sizeof(header), stream_));
  if (header.tag != tag || header.count > kMaxFloats) {
    // The ranks disagree on the order of exchanges: the payload that follows
    // is not the one this call expects, and nothing after it would be either.
    comm_->Abort();
    return absl::InternalError(absl::StrCat("NCCL host Recv on rank ", rank(), ": rank ", from, " sent tag ",
                                            header.tag, " (", header.count, " floats), expected tag ", tag,
                                            "; the communicator is aborted"));
  }
  std::vector<float> block(header.count);
  if (header.count == 0) return block;
  StagingBuffer payload(stream_);  // (header.count) floats
  const size_t payload_bytes = header.count * sizeof(float);
  RETURN_IF_ERROR(payload.Allocate(payload_bytes));
  RETURN_IF_ERROR(
      comm_->SendRecv("Recv", -1, nullptr, 0, from, payload.at(0), payload_bytes, stream_, timeout_, cancelled_));
  RETURN_IF_ERROR(Download(block.data(), payload.at(0), payload_bytes, stream_));
  return block;
}

}  // namespace tessera
