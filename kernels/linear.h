// Linear layer: y = x · Wᵀ (+ bias), the matrix product behind every projection
// and the lm_head. W is stored (out_features, in_features) row-major, exactly as
// Hugging Face checkpoints store nn.Linear weights, so no transpose at load.
//
// x and W share one storage type (`type`): fp32, or bf16 with fp32
// accumulation. bias is fp32 whatever the type. y is fp32 (`y_type`), or bf16
// when the operands are: the product is accumulated in fp32 and rounded once
// on store, so a bf16 consumer (the conv, an activation, attention) reads it
// without a cast; the projections into the residual stream keep an fp32 y.
// The bias, when given, is laid into y (or added to it) before one GEMM with
// beta = 1 finishes the job (in a bf16 y the bias is rounded to bf16 first).
// The CPU version calls BLAS (OpenBLAS) on fp32 operands only (UNIMPLEMENTED
// for bf16); the CUDA version cuBLAS, fp32 without TF32 (results match the CPU
// to fp32 rounding) or bf16 GemmEx with fp32 accumulation, except bf16
// products of at most 8 rows (a decode step's), most of which run on a
// tensor-core GEMV (kernels/cuda/linear_gemv.h) that adds the bias and the
// accumulated y in fp32 and rounds y once.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct LinearParams {
  int64_t rows = 0;          // M: tokens (may be 0: nothing happens)
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  ElementType type = ElementType::kF32;  // of x and weight
  const void* x = nullptr;   // (rows, in_features) of `type`, row stride x_stride
  int64_t x_stride = 0;      // elements between rows of x; 0 means in_features
  const void* weight = nullptr;  // (out_features, in_features) of `type`, row-major
  const float* bias = nullptr;   // (out_features) fp32, or null
  void* y = nullptr;         // (rows, out_features) of y_type, row stride y_stride
  int64_t y_stride = 0;      // 0 means out_features
  bool accumulate = false;   // true: y += x·Wᵀ (residual add fused), false: y = x·Wᵀ
  // Last, so that brace-initialized params written before it keep their meaning.
  ElementType y_type = ElementType::kF32;  // of y: fp32, or bf16 when `type` is bf16
  // CUDA: device memory cuBLAS may use as its workspace for this call (a call
  // captured in a CUDA graph is given one that lives as long as the graph);
  // null: the handle's own. The CPU ignores it.
  void* workspace = nullptr;
  int64_t workspace_bytes = 0;
};

// The contract's checks (kernels/linear.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "Linear: <what>" naming the field and the value given.
absl::Status CheckLinearParams(const LinearParams& p);

namespace cpu {
absl::Status Linear(const LinearParams& p);
// Threads BLAS may use per call (1 when several workers share the cores).
void SetBlasThreads(int threads);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status Linear(const LinearParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
