// Host entry points of the CUDA ops: each validates its params exactly as the
// CPU reference does (same checks, same INVALID_ARGUMENT messages, through
// kernels/cpu/kernel_util.h), enqueues the launcher of launch.h and turns the
// CUDA error into a status. Nothing derived from input aborts. Linear's GEMM
// is here too (cuBLAS is a host API), with one cuBLAS handle per thread and
// device, in fp32 math (no TF32), so results match the CPU to fp32 rounding.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <vector>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"
#include "kernels/cuda/bf16_ops.h"
#include "kernels/cuda/launch.h"

namespace tessera::cuda {
namespace {

using cpu::CheckDivides;
using cpu::CheckFitsBlasInt;
using cpu::CheckNonNegative;
using cpu::CheckNotNull;
using cpu::CheckPositive;
using cpu::CheckRowStride;
using cpu::ParamError;
using cpu::StrideOr;

cudaStream_t ToCuda(CudaStream stream) { return stream; }

absl::Status FromCuda(absl::string_view op, cudaError_t e) {
  if (e == cudaSuccess) return absl::OkStatus();
  const std::string what = absl::StrCat(op, ": ", cudaGetErrorName(e), ": ", cudaGetErrorString(e));
  if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(what);
  if (e == cudaErrorInvalidValue) return absl::InvalidArgumentError(what);
  return absl::InternalError(what);
}

absl::Status FromCublas(absl::string_view op, cublasStatus_t s) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string what = absl::StrCat(op, ": cuBLAS ", cublasGetStatusName(s), ": ",
                                        cublasGetStatusString(s));
  if (s == CUBLAS_STATUS_ALLOC_FAILED) return absl::ResourceExhaustedError(what);
  return absl::InternalError(what);
}

// One handle per (thread, device), created on first use and kept for the thread.
absl::StatusOr<cublasHandle_t> CublasHandle(absl::string_view op) {
  constexpr int kMaxDevices = 64;
  struct Handles {
    cublasHandle_t h[kMaxDevices] = {};
    ~Handles() {
      for (cublasHandle_t handle : h) {
        if (handle != nullptr) cublasDestroy(handle);
      }
    }
  };
  thread_local Handles handles;
  int device = 0;
  RETURN_IF_ERROR(FromCuda(op, cudaGetDevice(&device)));
  if (device < 0 || device >= kMaxDevices) return absl::InternalError("device index out of range");
  cublasHandle_t& handle = handles.h[device];
  if (handle == nullptr) {
    RETURN_IF_ERROR(FromCublas(op, cublasCreate(&handle)));
    RETURN_IF_ERROR(FromCublas(op, cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH)));
  }
  return handle;
}

// ---- validation, mirroring kernels/cpu/*.cc ----

absl::Status ValidateLinear(const LinearParams& p) {
  constexpr absl::string_view kOp = "Linear";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "in_features", p.in_features));
  RETURN_IF_ERROR(CheckPositive(kOp, "out_features", p.out_features));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.in_features));
  RETURN_IF_ERROR(CheckRowStride(kOp, "y_stride", p.y_stride, p.out_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "in_features", p.in_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "out_features", p.out_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "x_stride", p.x_stride));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "y_stride", p.y_stride));
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

absl::Status ValidateEmbedding(const EmbeddingParams& p) {
  constexpr absl::string_view kOp = "Embedding";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "num_tokens", p.num_tokens));
  RETURN_IF_ERROR(CheckPositive(kOp, "vocab_size", p.vocab_size));
  RETURN_IF_ERROR(CheckPositive(kOp, "hidden", p.hidden));
  if (p.num_tokens == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "ids", p.ids));
  RETURN_IF_ERROR(CheckNotNull(kOp, "table", p.table));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

absl::Status ValidateRmsNorm(const RmsNormParams& p) {
  constexpr absl::string_view kOp = "RmsNorm";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.width));
  if (!(p.eps >= 0.0f) || std::isinf(p.eps)) {
    return ParamError(kOp, absl::StrCat("eps must be finite and >= 0. Given: ", p.eps));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.out == p.x && StrideOr(p.x_stride, p.width) != p.width) {
    return ParamError(kOp, "out may alias x only when x_stride == width");
  }
  return absl::OkStatus();
}

absl::Status ValidateGatedRmsNorm(const GatedRmsNormParams& p) {
  constexpr absl::string_view kOp = "GatedRmsNorm";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckPositive(kOp, "group_size", p.group_size));
  RETURN_IF_ERROR(CheckDivides(kOp, "group_size", p.group_size, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "y_stride", p.y_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "z_stride", p.z_stride, p.width));
  if (!(p.eps >= 0.0f) || std::isinf(p.eps)) {
    return ParamError(kOp, absl::StrCat("eps must be finite and >= 0. Given: ", p.eps));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  RETURN_IF_ERROR(CheckNotNull(kOp, "z", p.z));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.out == p.y && StrideOr(p.y_stride, p.width) != p.width) {
    return ParamError(kOp, "out may alias y only when y_stride == width");
  }
  return absl::OkStatus();
}

absl::Status ValidateDtSoftplus(const DtSoftplusParams& p) {
  constexpr absl::string_view kOp = "DtSoftplus";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckRowStride(kOp, "dt_stride", p.dt_stride, p.num_heads));
  if (std::isnan(p.dt_min) || std::isnan(p.dt_max) || p.dt_min > p.dt_max) {
    return ParamError(kOp, absl::StrCat("need dt_min <= dt_max. Given: dt_min ", p.dt_min,
                                        ", dt_max ", p.dt_max));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt_raw", p.dt_raw));
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt_bias", p.dt_bias));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

absl::Status ValidateCausalConv1d(const CausalConv1dParams& p) {
  constexpr absl::string_view kOp = "CausalConv1d";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "seq_len", p.seq_len));
  RETURN_IF_ERROR(CheckPositive(kOp, "channels", p.channels));
  RETURN_IF_ERROR(CheckPositive(kOp, "kernel_width", p.kernel_width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.channels));
  if (p.seq_len == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

absl::Status CheckSsdShape(absl::string_view op, int64_t seq_len, int64_t heads, int64_t head_dim,
                           int64_t groups, int64_t state_size, int64_t dt_stride,
                           int64_t c_stride) {
  RETURN_IF_ERROR(CheckNonNegative(op, "seq_len", seq_len));
  RETURN_IF_ERROR(CheckPositive(op, "num_heads", heads));
  RETURN_IF_ERROR(CheckPositive(op, "head_dim", head_dim));
  RETURN_IF_ERROR(CheckPositive(op, "num_groups", groups));
  RETURN_IF_ERROR(CheckDivides(op, "num_groups", groups, "num_heads", heads));
  RETURN_IF_ERROR(CheckPositive(op, "state_size", state_size));
  RETURN_IF_ERROR(CheckRowStride(op, "dt_stride", dt_stride, heads));
  RETURN_IF_ERROR(CheckRowStride(op, "c_stride", c_stride, groups * state_size));
  RETURN_IF_ERROR(CheckFitsBlasInt(op, "num_heads * head_dim", heads * head_dim));
  RETURN_IF_ERROR(CheckFitsBlasInt(op, "c_stride", StrideOr(c_stride, groups * state_size)));
  return absl::OkStatus();
}

absl::Status ValidateSsdScan(const SsdScanParams& p) {
  constexpr absl::string_view kOp = "SsdScan";
  RETURN_IF_ERROR(CheckSsdShape(kOp, p.seq_len, p.num_heads, p.head_dim, p.num_groups,
                                p.state_size, p.dt_stride, p.c_stride));
  RETURN_IF_ERROR(CheckPositive(kOp, "chunk_size", p.chunk_size));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "chunk_size", p.chunk_size));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.num_heads * p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(kOp, "b_stride", p.b_stride, p.num_groups * p.state_size));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "x_stride", p.x_stride));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "b_stride",
                                   StrideOr(p.b_stride, p.num_groups * p.state_size)));
  if (p.seq_len == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt", p.dt));
  RETURN_IF_ERROR(CheckNotNull(kOp, "A", p.A));
  RETURN_IF_ERROR(CheckNotNull(kOp, "B", p.B));
  RETURN_IF_ERROR(CheckNotNull(kOp, "C", p.C));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

absl::Status ValidateSsdAddInitialState(const SsdAddInitialStateParams& p) {
  constexpr absl::string_view kOp = "SsdAddInitialState";
  RETURN_IF_ERROR(CheckSsdShape(kOp, p.seq_len, p.num_heads, p.head_dim, p.num_groups,
                                p.state_size, p.dt_stride, p.c_stride));
  if (p.seq_len == 0 && p.final_state == nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "initial_state", p.initial_state));
  if (p.seq_len == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt", p.dt));
  RETURN_IF_ERROR(CheckNotNull(kOp, "A", p.A));
  RETURN_IF_ERROR(CheckNotNull(kOp, "C", p.C));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

absl::Status ValidateSsdStep(const SsdStepParams& p) {
  constexpr absl::string_view kOp = "SsdStep";
  RETURN_IF_ERROR(CheckPositive(kOp, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "head_dim", p.head_dim));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_groups", p.num_groups));
  RETURN_IF_ERROR(CheckDivides(kOp, "num_groups", p.num_groups, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "state_size", p.state_size));
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt", p.dt));
  RETURN_IF_ERROR(CheckNotNull(kOp, "A", p.A));
  RETURN_IF_ERROR(CheckNotNull(kOp, "B", p.B));
  RETURN_IF_ERROR(CheckNotNull(kOp, "C", p.C));
  RETURN_IF_ERROR(CheckNotNull(kOp, "state", p.state));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

absl::Status ValidateRope(const RopeParams& p) {
  constexpr absl::string_view kOp = "Rope";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "num_tokens", p.num_tokens));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "head_dim", p.head_dim));
  if (p.rotary_dim <= 0 || p.rotary_dim % 2 != 0 || p.rotary_dim > p.head_dim) {
    return ParamError(kOp, absl::StrCat("rotary_dim must be even, > 0 and <= head_dim (",
                                        p.head_dim, "). Given: ", p.rotary_dim));
  }
  if (!(p.theta > 0.0f) || std::isinf(p.theta)) {
    return ParamError(kOp, absl::StrCat("theta must be finite and > 0. Given: ", p.theta));
  }
  RETURN_IF_ERROR(CheckNonNegative(kOp, "position0", p.position0));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.num_heads * p.head_dim));
  if (p.num_tokens == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  return absl::OkStatus();
}

absl::Status ValidateAttention(const AttentionParams& p) {
  constexpr absl::string_view kOp = "Attention";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "q_len", p.q_len));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "kv_len", p.kv_len));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_q_heads", p.num_q_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_kv_heads", p.num_kv_heads));
  RETURN_IF_ERROR(CheckDivides(kOp, "num_kv_heads", p.num_kv_heads, "num_q_heads",
                               p.num_q_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "head_dim", p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(kOp, "q_stride", p.q_stride, p.num_q_heads * p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(kOp, "k_stride", p.k_stride, p.num_kv_heads * p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(kOp, "v_stride", p.v_stride, p.num_kv_heads * p.head_dim));
  if (!(p.scale > 0.0f) || std::isinf(p.scale)) {
    return ParamError(kOp, absl::StrCat("scale must be finite and > 0. Given: ", p.scale));
  }
  if (p.q_len == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "q", p.q));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.kv_len == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "k", p.k));
  RETURN_IF_ERROR(CheckNotNull(kOp, "v", p.v));
  return absl::OkStatus();
}

// Beyond the CPU checks: what the CUDA kernels instantiate.
absl::Status CheckAttentionSupported(const AttentionParams& p, int64_t max_head_dim) {
  if (p.head_dim > max_head_dim) {
    return absl::UnimplementedError(absl::StrCat(
        "Attention (CUDA): head_dim must be <= ", max_head_dim, ". Given: ", p.head_dim));
  }
  if (p.num_q_heads > 65535) {
    return absl::UnimplementedError(
        absl::StrCat("Attention (CUDA): num_q_heads must be <= 65535. Given: ", p.num_q_heads));
  }
  return absl::OkStatus();
}

absl::Status ValidateAttentionMerge(const AttentionMergeParams& p) {
  constexpr absl::string_view kOp = "AttentionMerge";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "head_dim", p.head_dim));
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  RETURN_IF_ERROR(CheckNotNull(kOp, "lse", p.lse));
  RETURN_IF_ERROR(CheckNotNull(kOp, "part_out", p.part_out));
  RETURN_IF_ERROR(CheckNotNull(kOp, "part_lse", p.part_lse));
  return absl::OkStatus();
}

absl::Status ValidateSiluMul(const SiluMulParams& p) {
  constexpr absl::string_view kOp = "SiluMul";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "gate_stride", p.gate_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "up_stride", p.up_stride, p.width));
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "gate", p.gate));
  RETURN_IF_ERROR(CheckNotNull(kOp, "up", p.up));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.out == p.gate && StrideOr(p.gate_stride, p.width) != p.width) {
    return ParamError(kOp, "out may alias gate only when gate_stride == width");
  }
  if (p.out == p.up && StrideOr(p.up_stride, p.width) != p.width) {
    return ParamError(kOp, "out may alias up only when up_stride == width");
  }
  return absl::OkStatus();
}

absl::Status ValidateReluSquared(const ReluSquaredParams& p) {
  constexpr absl::string_view kOp = "ReluSquared";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "count", p.count));
  if (p.count == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

// inv_freq_i = 1 / theta^(2i / rotary_dim), exactly as the CPU reference forms it.
std::vector<float> RopeInverseFrequencies(float theta, int64_t rotary_dim) {
  std::vector<float> inv_freq(rotary_dim / 2);  // (rotary_dim / 2)
  for (int64_t i = 0; i < rotary_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    inv_freq[i] = 1.0f / std::pow(theta, exponent);
  }
  return inv_freq;
}

}  // namespace

absl::Status Linear(const LinearParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Linear";
  RETURN_IF_ERROR(ValidateLinear(p));
  if (p.rows == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(cublasHandle_t handle, CublasHandle(kOp));
  RETURN_IF_ERROR(FromCublas(kOp, cublasSetStream(handle, ToCuda(stream))));
  float beta = p.accumulate ? 1.0f : 0.0f;
  if (p.bias != nullptr) {
    RETURN_IF_ERROR(FromCuda(kOp, cuda_launch::LinearBias(p, ToCuda(stream))));
    beta = 1.0f;
  }
  // Row-major y (M, N) = x (M, K) · Wᵀ is column-major yᵀ (N, M) = W' (N, K) · xᵀ (K, M),
  // where W row-major (N, K) read column-major is (K, N), hence OP_T.
  const float alpha = 1.0f;
  return FromCublas(
      kOp, cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(p.out_features),
                       static_cast<int>(p.rows), static_cast<int>(p.in_features), &alpha, p.weight,
                       static_cast<int>(p.in_features), p.x,
                       static_cast<int>(StrideOr(p.x_stride, p.in_features)), &beta, p.y,
                       static_cast<int>(StrideOr(p.y_stride, p.out_features))));
}

absl::Status LinearBf16(int64_t rows, int64_t in_features, int64_t out_features, const void* x,
                        const void* weight, float* y, CudaStream stream) {
  constexpr absl::string_view kOp = "LinearBf16";
  RETURN_IF_ERROR(CheckPositive(kOp, "rows", rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "in_features", in_features));
  RETURN_IF_ERROR(CheckPositive(kOp, "out_features", out_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "rows", rows));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "in_features", in_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "out_features", out_features));
  ASSIGN_OR_RETURN(cublasHandle_t handle, CublasHandle(kOp));
  RETURN_IF_ERROR(FromCublas(kOp, cublasSetStream(handle, ToCuda(stream))));
  const float alpha = 1.0f, beta = 0.0f;
  return FromCublas(
      kOp, cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out_features),
                        static_cast<int>(rows), static_cast<int>(in_features), &alpha, weight,
                        CUDA_R_16BF, static_cast<int>(in_features), x, CUDA_R_16BF,
                        static_cast<int>(in_features), &beta, y, CUDA_R_32F,
                        static_cast<int>(out_features), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// Ids are device memory: they are copied back and checked before the gather,
// so this entry point synchronizes `stream` (and a bad id leaves out untouched).
absl::Status Embedding(const EmbeddingParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Embedding";
  RETURN_IF_ERROR(ValidateEmbedding(p));
  if (p.num_tokens == 0) return absl::OkStatus();
  std::vector<int32_t> ids(p.num_tokens);
  RETURN_IF_ERROR(FromCuda(kOp, cudaMemcpyAsync(ids.data(), p.ids, sizeof(int32_t) * ids.size(),
                                                cudaMemcpyDeviceToHost, ToCuda(stream))));
  RETURN_IF_ERROR(FromCuda(kOp, cudaStreamSynchronize(ToCuda(stream))));
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int32_t id = ids[t];
    if (id < 0 || id >= p.vocab_size) {
      return ParamError(kOp, absl::StrCat("token id ", id, " at position ", t,
                                          " is outside the vocabulary [0, ", p.vocab_size, ")"));
    }
  }
  return FromCuda(kOp, cuda_launch::Embedding(p, ToCuda(stream)));
}

absl::Status RmsNorm(const RmsNormParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateRmsNorm(p));
  return FromCuda("RmsNorm", cuda_launch::RmsNorm(p, ToCuda(stream)));
}

absl::Status GatedRmsNorm(const GatedRmsNormParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateGatedRmsNorm(p));
  return FromCuda("GatedRmsNorm", cuda_launch::GatedRmsNorm(p, ToCuda(stream)));
}

absl::Status DtSoftplus(const DtSoftplusParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateDtSoftplus(p));
  return FromCuda("DtSoftplus", cuda_launch::DtSoftplus(p, ToCuda(stream)));
}

absl::Status CausalConv1d(const CausalConv1dParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateCausalConv1d(p));
  return FromCuda("CausalConv1d", cuda_launch::CausalConv1d(p, ToCuda(stream)));
}

absl::Status SsdScan(const SsdScanParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateSsdScan(p));
  return FromCuda("SsdScan", cuda_launch::SsdScan(p, ToCuda(stream)));
}

absl::Status SsdAddInitialState(const SsdAddInitialStateParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateSsdAddInitialState(p));
  if (p.seq_len == 0 && p.final_state == nullptr) return absl::OkStatus();
  return FromCuda("SsdAddInitialState", cuda_launch::SsdAddInitialState(p, ToCuda(stream)));
}

absl::Status SsdStep(const SsdStepParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateSsdStep(p));
  return FromCuda("SsdStep", cuda_launch::SsdStep(p, ToCuda(stream)));
}

absl::Status Rope(const RopeParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Rope";
  RETURN_IF_ERROR(ValidateRope(p));
  if (p.num_tokens == 0) return absl::OkStatus();
  const std::vector<float> inv_freq = RopeInverseFrequencies(p.theta, p.rotary_dim);
  float* device_inv_freq = nullptr;  // (rotary_dim / 2)
  RETURN_IF_ERROR(FromCuda(kOp, cudaMallocAsync(reinterpret_cast<void**>(&device_inv_freq),
                                                sizeof(float) * inv_freq.size(), ToCuda(stream))));
  // A pageable host-to-device copy returns once the source is staged, so the
  // host vector may go out of scope after it.
  absl::Status status = FromCuda(
      kOp, cudaMemcpyAsync(device_inv_freq, inv_freq.data(), sizeof(float) * inv_freq.size(),
                           cudaMemcpyHostToDevice, ToCuda(stream)));
  if (status.ok()) status = FromCuda(kOp, cuda_launch::Rope(p, device_inv_freq, ToCuda(stream)));
  const absl::Status freed = FromCuda(kOp, cudaFreeAsync(device_inv_freq, ToCuda(stream)));
  return status.ok() ? freed : status;
}

absl::Status Attention(const AttentionParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateAttention(p));
  RETURN_IF_ERROR(CheckAttentionSupported(p, cuda_launch::kAttentionMaxHeadDim));
  return FromCuda("Attention", cuda_launch::Attention(p, ToCuda(stream)));
}

absl::Status AttentionBf16(const AttentionParams& p, const void* q, const void* k, const void* v,
                           CudaStream stream) {
  AttentionParams checked = p;
  // The fp32 pointers are unused; validate the bf16 ones in their place.
  checked.q = static_cast<const float*>(q);
  checked.k = static_cast<const float*>(k);
  checked.v = static_cast<const float*>(v);
  RETURN_IF_ERROR(ValidateAttention(checked));
  RETURN_IF_ERROR(CheckAttentionSupported(p, cuda_launch::kAttentionBf16MaxHeadDim));
  cuda_launch::AttentionBf16Params bp{p, q, k, v};
  return FromCuda("AttentionBf16", cuda_launch::AttentionBf16(bp, ToCuda(stream)));
}

absl::Status AttentionMerge(const AttentionMergeParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateAttentionMerge(p));
  return FromCuda("AttentionMerge", cuda_launch::AttentionMerge(p, ToCuda(stream)));
}

absl::Status SiluMul(const SiluMulParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateSiluMul(p));
  return FromCuda("SiluMul", cuda_launch::SiluMul(p, ToCuda(stream)));
}

absl::Status ReluSquared(const ReluSquaredParams& p, CudaStream stream) {
  RETURN_IF_ERROR(ValidateReluSquared(p));
  return FromCuda("ReluSquared", cuda_launch::ReluSquared(p, ToCuda(stream)));
}

}  // namespace tessera::cuda
