// y = x · Wᵀ (+ bias) through one cblas_sgemm: W is (out, in) row-major as the
// checkpoint stores it, which is exactly BLAS's "B transposed". The bias is laid
// into y first so that a single GEMM with beta = 1 finishes the job. fp32
// operands only: bf16 x and W are the CUDA backend's (UNIMPLEMENTED here).
#include "kernels/linear.h"

#include <cblas.h>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

// y = bias (or y += bias when accumulating), row by row.
void LayBias(const LinearParams& p, int64_t y_stride) {
  for (int64_t r = 0; r < p.rows; ++r) {
    float* y = static_cast<float*>(p.y) + r * y_stride;  // (out_features)
    for (int64_t n = 0; n < p.out_features; ++n) {
      y[n] = p.accumulate ? y[n] + p.bias[n] : p.bias[n];
    }
  }
}

}  // namespace

absl::Status Linear(const LinearParams& p) {
  RETURN_IF_ERROR(CheckLinearParams(p));
  RETURN_IF_ERROR(RequireF32Operands("Linear", p.type));
  if (p.rows == 0) return absl::OkStatus();
  const int64_t x_stride = StrideOr(p.x_stride, p.in_features);
  const int64_t y_stride = StrideOr(p.y_stride, p.out_features);
  float beta = p.accumulate ? 1.0f : 0.0f;
  if (p.bias != nullptr) {
    LayBias(p, y_stride);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(p.rows),
              static_cast<int>(p.out_features), static_cast<int>(p.in_features), 1.0f,
              static_cast<const float*>(p.x), static_cast<int>(x_stride),
              static_cast<const float*>(p.weight), static_cast<int>(p.in_features), beta,
              static_cast<float*>(p.y), static_cast<int>(y_stride));
  return absl::OkStatus();
}

}  // namespace tessera::cpu

namespace tessera::cpu {

void SetBlasThreads(int threads) { openblas_set_num_threads(threads < 1 ? 1 : threads); }

}  // namespace tessera::cpu
