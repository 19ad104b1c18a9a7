// Elementwise MLP activations, computed in fp32:
//   SiluMul:     out = silu(gate) · up        (SwiGLU MLP of bamba/granite)
//   ReluSquared: out = max(x, 0)²             (relu² MLP of nemotron_h)
// All of an op's tensors share one storage type (`type`): fp32, or bf16 (the
// up projection's bf16 output, rewritten in place as the down projection's
// operand), widened as read and rounded once on store.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct SiluMulParams {
  int64_t rows = 0;   // R (may be 0)
  int64_t width = 0;  // W
  const void* gate = nullptr;   // (rows, width) of `type`, row stride gate_stride
  int64_t gate_stride = 0;      // 0 means width
  const void* up = nullptr;     // (rows, width) of `type`, row stride up_stride
  int64_t up_stride = 0;        // 0 means width
  void* out = nullptr;          // (rows, width) of `type`, row stride out_stride; may alias gate or up
                                // with the same stride (the gate half of a fused [gate | up], in place)
  // Last, so that brace-initialized params written before them keep their meaning.
  int64_t out_stride = 0;       // 0 means width
  ElementType type = ElementType::kF32;  // of gate, up and out
};

struct ReluSquaredParams {
  int64_t count = 0;  // elements (may be 0)
  const void* x = nullptr;  // (count) of `type`
  void* out = nullptr;      // (count) of `type`; may alias x
  ElementType type = ElementType::kF32;
};

// The contract's checks (kernels/activation.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckSiluMulParams(const SiluMulParams& p);
absl::Status CheckReluSquaredParams(const ReluSquaredParams& p);

namespace cpu {
absl::Status SiluMul(const SiluMulParams& p);
absl::Status ReluSquared(const ReluSquaredParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status SiluMul(const SiluMulParams& p, CudaStream stream);
absl::Status ReluSquared(const ReluSquaredParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
