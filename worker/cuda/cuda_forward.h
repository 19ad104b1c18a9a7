// The model's forward pass on one GPU: the block loop of the CPU reference
// (worker/cpu_forward.cc) on device buffers, with the same shard exchanges
// (conv halo and SSD summaries all-gathered, K/V blocks around the ring) done
// on device memory through a DeviceExchange, and split-KV decode through the
// context's RemoteKvAttention. Precision: matrices, GEMM operands and K/V in
// the weights' element type (bf16 or fp32); residual stream, norms, conv, SSD
// scan and states, softmax and accumulation in fp32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/cuda/cuda_shard_state.h"
#include "worker/cuda/device_weights.h"
#include "worker/engine.h"

namespace tessera::cuda_engine {

// Engine::Forward on `stream` (the caller has made w.device current).
absl::StatusOr<std::vector<float>> ForwardCuda(const DeviceWeights& w, CudaShardState& state,
                                               absl::Span<const int32_t> ids, LogitsRows rows,
                                               const ShardContext& shard, cudaStream_t stream);

// Device bytes one prompt token of a prefill needs at the peak of a pass (the
// residual stream and normed rows, plus the widest block's scratch), with a
// margin for the allocator and cuBLAS workspaces; logits of every row
// (return_logits) are not counted.
int64_t ActivationBytesPerToken(const ModelConfig& config, ElementType type);

// Engine::AttendStoredKv on `stream`.
absl::StatusOr<AttentionPartial> AttendStoredKvCuda(const DeviceWeights& w, const CudaShardState& state,
                                                    int64_t attention_slot, absl::Span<const float> q,
                                                    int64_t q_len, int64_t q_position0, cudaStream_t stream);

}  // namespace tessera::cuda_engine
