// Host entry points of the bf16 mode (mixed_precision.h). Each op switches on
// the storage type once: kF32 hands over to the fp32 op of the same contract
// (cuda::Linear, Embedding, Attention), so the engine's two modes share one
// code path above this file; kBF16 runs the same checks, then cuBLAS GemmEx on
// bf16 operands with fp32 accumulation, or the bf16 launchers of launch.h.
// The shared checks of kernels/params_check.h validate the ops whose params
// struct is the fp32 op's (their messages name that op); MixedLinear and the
// casts have their own params and checks here, in the same spelling.
#include "kernels/cuda/mixed_precision.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/launch.h"
#include "kernels/linear.h"
#include "kernels/params_check.h"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::CublasHandle;
using cuda_host::FromCublas;
using cuda_host::FromCuda;
using params_check::CheckFitsBlasInt;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;
using params_check::ParamError;
using params_check::StrideOr;

cudaStream_t ToCuda(CudaStream stream) { return stream; }

// An ElementType outside the enum (a cast from an int) is a bad request.
absl::Status CheckElementType(absl::string_view op, ElementType type) {
  switch (type) {
    case ElementType::kF32:
    case ElementType::kBF16:
      return absl::OkStatus();
  }
  return ParamError(op,
                    absl::StrCat("type must be kF32 or kBF16. Given: ", static_cast<int>(type)));
}

// The fp32 Linear of the same shapes and pointers (the pointers are only
// dereferenced by the fp32 path; the checks read their nullness).
LinearParams AsLinearParams(const MixedLinearParams& p) {
  return LinearParams{p.rows,    p.in_features, p.out_features, static_cast<const float*>(p.x), p.x_stride,
                      static_cast<const float*>(p.weight), p.bias, p.y, p.y_stride, p.accumulate};
}

absl::Status CheckMixedLinearParams(const MixedLinearParams& p) {
  constexpr absl::string_view kOp = "MixedLinear";
  RETURN_IF_ERROR(CheckElementType(kOp, p.type));
  return CheckLinearParams(AsLinearParams(p), kOp);
}

// Validated params, rows > 0, bf16 operands. The bias step of cuda::Linear
// (y = bias, or y += bias), then one GEMM with beta = 1 when there was a bias.
absl::Status LinearBf16(const MixedLinearParams& p, cudaStream_t stream) {
  constexpr absl::string_view kOp = "MixedLinear";
  ASSIGN_OR_RETURN(cuda_host::CublasContext blas, CublasHandle(kOp));
  RETURN_IF_ERROR(FromCublas(kOp, blas.api->SetStream(blas.handle, stream)));
  const int64_t x_stride = StrideOr(p.x_stride, p.in_features);
  const int64_t y_stride = StrideOr(p.y_stride, p.out_features);
  float beta = p.accumulate ? 1.0f : 0.0f;
  if (p.bias != nullptr) {
    LinearParams bias_step;  // only rows, out_features, bias, y, y_stride, accumulate are read
    bias_step.rows = p.rows;
    bias_step.in_features = p.in_features;
    bias_step.out_features = p.out_features;
    bias_step.bias = p.bias;
    bias_step.y = p.y;
    bias_step.y_stride = y_stride;
    bias_step.accumulate = p.accumulate;
    RETURN_IF_ERROR(FromCuda(kOp, cuda_launch::LinearBias(bias_step, stream)));
    beta = 1.0f;
  }
  // As in cuda::Linear: row-major y (M, N) = x (M, K) · Wᵀ is column-major
  // yᵀ (N, M) = W' (N, K) · xᵀ (K, M), W row-major (N, K) read column-major as
  // (K, N), hence OP_T. bf16 operands, fp32 accumulation and output.
  const float alpha = 1.0f;
  return FromCublas(
      kOp, blas.api->GemmEx(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(p.out_features),
                        static_cast<int>(p.rows), static_cast<int>(p.in_features), &alpha, p.weight,
                        CUDA_R_16BF, static_cast<int>(p.in_features), p.x, CUDA_R_16BF,
                        static_cast<int>(x_stride), &beta, p.y, CUDA_R_32F,
                        static_cast<int>(y_stride), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// The checks of StoreAs and LoadAsFloat: (rows, width) with row strides, and
// no aliasing that the row-parallel copy would race on.
absl::Status CheckCastParams(absl::string_view op, ElementType type, int64_t rows, int64_t width,
                             const void* in, int64_t in_stride, const void* out,
                             int64_t out_stride) {
  RETURN_IF_ERROR(CheckElementType(op, type));
  RETURN_IF_ERROR(CheckNonNegative(op, "rows", rows));
  RETURN_IF_ERROR(CheckPositive(op, "width", width));
  RETURN_IF_ERROR(CheckRowStride(op, "in_stride", in_stride, width));
  RETURN_IF_ERROR(CheckRowStride(op, "out_stride", out_stride, width));
  if (rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(op, "in", in));
  RETURN_IF_ERROR(CheckNotNull(op, "out", out));
  if (in == out &&
      (type != ElementType::kF32 || StrideOr(in_stride, width) != StrideOr(out_stride, width))) {
    return ParamError(op, "out may alias in only when type is kF32 and in_stride == out_stride");
  }
  return absl::OkStatus();
}

cuda_launch::CastRowsParams MakeCastRows(int64_t rows, int64_t width, const void* in,
                                         int64_t in_stride, void* out, int64_t out_stride) {
  return cuda_launch::CastRowsParams{
      rows, width, in, StrideOr(in_stride, width), out, StrideOr(out_stride, width)};
}

}  // namespace

int64_t ElementBytes(ElementType type) {
  switch (type) {
    case ElementType::kF32:
      return 4;
    case ElementType::kBF16:
      return 2;
  }
  return 0;
}

absl::Status MixedLinear(const MixedLinearParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckMixedLinearParams(p));
  if (p.rows == 0) return absl::OkStatus();
  switch (p.type) {
    case ElementType::kF32:
      return Linear(AsLinearParams(p), stream);
    case ElementType::kBF16:
      return LinearBf16(p, ToCuda(stream));
  }
  return absl::InternalError("MixedLinear: unhandled element type");
}

namespace {

// StoreAs and LoadAsFloat: the same checks and row walk; fp32 is a copy, bf16
// the cast `to_or_from_bf16`.
absl::Status CastRows(absl::string_view op, ElementType type, int64_t rows, int64_t width, const void* in,
                      int64_t in_stride, void* out, int64_t out_stride, CudaStream stream,
                      cudaError_t (*to_or_from_bf16)(const cuda_launch::CastRowsParams&, cudaStream_t)) {
  RETURN_IF_ERROR(CheckCastParams(op, type, rows, width, in, in_stride, out, out_stride));
  if (rows == 0) return absl::OkStatus();
  const cuda_launch::CastRowsParams cast = MakeCastRows(rows, width, in, in_stride, out, out_stride);
  switch (type) {
    case ElementType::kF32:
      if (in == out) return absl::OkStatus();  // same rows, same stride
      return FromCuda(op, cuda_launch::CopyF32(cast, ToCuda(stream)));
    case ElementType::kBF16:
      return FromCuda(op, to_or_from_bf16(cast, ToCuda(stream)));
  }
  return absl::InternalError(absl::StrCat(op, ": unhandled element type"));
}

}  // namespace

absl::Status StoreAs(ElementType type, int64_t rows, int64_t width, const float* in, int64_t in_stride, void* out,
                     int64_t out_stride, CudaStream stream) {
  return CastRows("StoreAs", type, rows, width, in, in_stride, out, out_stride, stream, cuda_launch::CastF32ToBf16);
}

absl::Status LoadAsFloat(ElementType type, int64_t rows, int64_t width, const void* in, int64_t in_stride,
                         float* out, int64_t out_stride, CudaStream stream) {
  return CastRows("LoadAsFloat", type, rows, width, in, in_stride, out, out_stride, stream,
                  cuda_launch::CastBf16ToF32);
}

absl::Status MixedEmbedding(const EmbeddingParams& p, ElementType type, const void* table,
                            CudaStream stream) {
  constexpr absl::string_view kOp = "MixedEmbedding";
  RETURN_IF_ERROR(CheckElementType(kOp, type));
  EmbeddingParams checked = p;
  checked.table = static_cast<const float*>(table);  // checked for null in its place
  switch (type) {
    case ElementType::kF32:
      return Embedding(checked, stream);
    case ElementType::kBF16:
      RETURN_IF_ERROR(CheckEmbeddingParams(checked));
      if (p.num_tokens == 0) return absl::OkStatus();
      RETURN_IF_ERROR(cuda_host::CheckDeviceTokenIds(kOp, checked, ToCuda(stream)));
      return FromCuda(kOp, cuda_launch::EmbeddingBf16(checked, table, ToCuda(stream)));
  }
  return absl::InternalError("MixedEmbedding: unhandled element type");
}

absl::Status MixedAttention(const AttentionParams& p, ElementType type, const void* q,
                            const void* k, const void* v, CudaStream stream) {
  constexpr absl::string_view kOp = "MixedAttention";
  RETURN_IF_ERROR(CheckElementType(kOp, type));
  AttentionParams checked = p;  // the typed pointers, checked for null in place of p's
  checked.q = static_cast<const float*>(q);
  checked.k = static_cast<const float*>(k);
  checked.v = static_cast<const float*>(v);
  switch (type) {
    case ElementType::kF32:
      return Attention(checked, stream);
    case ElementType::kBF16:
      RETURN_IF_ERROR(CheckAttentionParams(checked));
      RETURN_IF_ERROR(
          cuda_host::CheckAttentionSupported(checked, cuda_launch::kAttentionMaxHeadDim));
      return FromCuda(kOp, cuda_launch::AttentionBf16(checked, q, k, v, ToCuda(stream)));
  }
  return absl::InternalError("MixedAttention: unhandled element type");
}

}  // namespace tessera::cuda
