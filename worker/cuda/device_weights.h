// The model's weights on one GPU, in the engine's precision.
//
// Matrices (projections, embedding, lm_head) are stored in the compute type
// (bf16 or fp32): a bf16 checkpoint goes to the GPU as its bytes, no host
// conversion; other dtypes are converted on the host in slices on the way.
// Vectors (norm weights, biases, conv taps, A, D, dt_bias) are fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/element_type.h"
#include "worker/cuda/device_buffer.h"
#include "model/model_weights.h"

namespace tessera::cuda_engine {

struct DeviceMatrix {
  DeviceBuffer buffer;
  ElementType type = ElementType::kF32;
  int64_t rows = 0;  // out_features
  int64_t cols = 0;  // in_features
  const void* data() const { return buffer.get(); }
};

// fp32 vector; data() is null when the tensor is absent (optional biases).
struct DeviceVector {
  DeviceBuffer buffer;
  int64_t size = 0;
  const float* data() const { return size > 0 ? buffer.as<const float>() : nullptr; }
};

struct DeviceMamba {
  DeviceMatrix in_proj, out_proj;
  DeviceVector in_proj_bias, out_proj_bias, conv_weight, conv_bias, dt_bias, A, D, norm;
};
struct DeviceAttention {
  DeviceMatrix q_proj, k_proj, v_proj, o_proj;
  DeviceVector q_bias, k_bias, v_bias, o_bias;
};
struct DeviceMlp {
  DeviceMatrix gate_proj, up_proj, down_proj;  // gate_proj empty unless SwiGLU
  DeviceVector gate_bias, up_bias, down_bias;
};
struct DeviceBlock {
  BlockSpec spec;
  int64_t state_slot = 0;
  DeviceVector norm;
  std::variant<DeviceMamba, DeviceAttention, DeviceMlp> op;
};

struct DeviceWeights {
  ModelConfig config;
  ElementType type = ElementType::kBF16;  // of matrices, GEMM operands and K/V
  int device = 0;
  DeviceMatrix embedding;  // (vocab, hidden)
  DeviceMatrix lm_head;    // (vocab, hidden)
  DeviceVector final_norm;
  std::vector<DeviceBlock> blocks;
  int64_t bytes = 0;  // device memory held
};

// Uploads `weights` (any WeightStorage) to the current device.
absl::StatusOr<std::unique_ptr<DeviceWeights>> UploadWeights(const ModelWeights& weights, ElementType type,
                                                             int device);

}  // namespace tessera::cuda_engine
