// Every entry point makes the engine's device current first: calls arrive on
// arbitrary gRPC threads.
#include "worker/cuda/cuda_engine.h"

#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "worker/cuda/cuda_forward.h"
#include "worker/cuda/cuda_shard_state.h"
#include "worker/cuda/device_weights.h"
#include "worker/sequence_state.h"

namespace tessera {
namespace {

using cuda_engine::CudaShardState;
using cuda_engine::CudaStatus;
using cuda_engine::DeviceBuffer;
using cuda_engine::DeviceWeights;

// A stream for one call, destroyed with it (pending work still completes).
class ScopedStream {
 public:
  static absl::StatusOr<ScopedStream> Create() {
    ScopedStream s;
    RETURN_IF_ERROR(CudaStatus("cudaStreamCreate", cudaStreamCreateWithFlags(&s.stream_, cudaStreamNonBlocking)));
    return s;
  }
  ScopedStream() = default;
  ScopedStream(ScopedStream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
  ScopedStream& operator=(ScopedStream&&) = delete;
  ~ScopedStream() {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

const char* TypeName(ElementType type) { return type == ElementType::kBF16 ? "bf16" : "fp32"; }

class CudaEngine final : public Engine {
 public:
  CudaEngine(std::unique_ptr<DeviceWeights> weights, std::string device_name, int64_t free_after_weights)
      : w_(std::move(weights)), device_name_(std::move(device_name)), free_after_weights_(free_after_weights) {}

  const ModelConfig& config() const override { return w_->config; }
  std::string backend() const override { return "cuda"; }
  std::string Describe() const override {
    return absl::StrFormat("cuda backend, %s, device %d (%s), weights %.2f GiB", TypeName(w_->type), w_->device,
                           device_name_, static_cast<double>(w_->bytes) / (1 << 30));
  }
  int64_t KvBytesPerToken() const override {
    return tessera::KvBytesPerToken(config(), ElementBytes(w_->type));
  }
  int64_t StateBytesPerRequest() const override { return tessera::StateBytesPerRequest(config()); }
  int64_t DefaultMemoryBudgetBytes() const override { return free_after_weights_ / 2; }
  int64_t PrefillTokenLimit(int64_t memory_budget_bytes) const override {
    const int64_t room = free_after_weights_ - memory_budget_bytes;
    return room > 0 ? room / cuda_engine::ActivationBytesPerToken(w_->config, w_->type) : 0;
  }

  absl::StatusOr<std::unique_ptr<ShardState>> NewState(int64_t begin, int64_t capacity_tokens) override {
    RETURN_IF_ERROR(UseDevice());
    const ModelConfig& c = config();
    const int64_t kv_row_bytes = c.attention.num_kv_heads * c.attention.head_dim * ElementBytes(w_->type);
    auto state = std::make_unique<CudaShardState>(begin, capacity_tokens, kv_row_bytes);
    state->attention.resize(c.CountBlocks(BlockKind::kAttention));
    const MambaConfig& m = c.mamba;
    for (int64_t i = 0; i < c.CountBlocks(BlockKind::kMamba); ++i) {
      cuda_engine::DeviceMambaState s;
      ASSIGN_OR_RETURN(s.conv, DeviceBuffer::AllocateZeroed((m.conv_kernel - 1) * m.conv_channels() * sizeof(float)));
      ASSIGN_OR_RETURN(s.ssm, DeviceBuffer::AllocateZeroed(m.num_heads * m.head_dim * m.state_size * sizeof(float)));
      state->mamba.push_back(std::move(s));
    }
    return state;
  }

  absl::StatusOr<std::vector<float>> Forward(ShardState& state, absl::Span<const int32_t> ids, LogitsRows rows,
                                             const ShardContext& shard) override {
    RETURN_IF_ERROR(UseDevice());
    ASSIGN_OR_RETURN(ScopedStream stream, ScopedStream::Create());
    return cuda_engine::ForwardCuda(*w_, static_cast<CudaShardState&>(state), ids, rows, shard, stream.get());
  }

  absl::StatusOr<AttentionPartial> AttendStoredKv(const ShardState& state, int64_t attention_slot,
                                                  absl::Span<const float> q, int64_t q_len,
                                                  int64_t q_position0) override {
    RETURN_IF_ERROR(UseDevice());
    ASSIGN_OR_RETURN(ScopedStream stream, ScopedStream::Create());
    return cuda_engine::AttendStoredKvCuda(*w_, static_cast<const CudaShardState&>(state), attention_slot, q, q_len,
                                           q_position0, stream.get());
  }

 private:
  absl::Status UseDevice() const {
    return CudaStatus(absl::StrCat("cudaSetDevice(", w_->device, ")"), cudaSetDevice(w_->device));
  }

  std::unique_ptr<DeviceWeights> w_;
  std::string device_name_;
  int64_t free_after_weights_;  // device bytes free once the weights were uploaded
};

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

absl::StatusOr<std::unique_ptr<Engine>> MakeCudaEngine(std::unique_ptr<ModelWeights> weights,
                                                       const CudaEngineOptions& options) {
  if (weights == nullptr) return absl::InvalidArgumentError("MakeCudaEngine: no weights");
  const int devices = CudaDeviceCount();
  if (options.device < 0 || options.device >= devices) {
    return absl::FailedPreconditionError(absl::StrCat("CUDA device ", options.device, " does not exist (", devices,
                                                      " visible)"));
  }
  const ModelConfig& c = weights->config;
  if (options.type == ElementType::kBF16 && c.CountBlocks(BlockKind::kAttention) > 0 &&
      c.attention.head_dim > 128) {
    return absl::UnimplementedError(absl::StrCat("bf16 attention supports head_dim <= 128; this model has ",
                                                 c.attention.head_dim, " (use --precision fp32)"));
  }
  cudaDeviceProp prop{};
  RETURN_IF_ERROR(CudaStatus("cudaGetDeviceProperties", cudaGetDeviceProperties(&prop, options.device)));
  ASSIGN_OR_RETURN(std::unique_ptr<DeviceWeights> device_weights,
                   cuda_engine::UploadWeights(*weights, options.type, options.device));
  weights.reset();  // the host copy (and the checkpoint mapping) is no longer needed
  size_t free_bytes = 0, total_bytes = 0;
  RETURN_IF_ERROR(CudaStatus("cudaMemGetInfo", cudaMemGetInfo(&free_bytes, &total_bytes)));
  return std::make_unique<CudaEngine>(std::move(device_weights), prop.name, static_cast<int64_t>(free_bytes));
}

}  // namespace tessera
