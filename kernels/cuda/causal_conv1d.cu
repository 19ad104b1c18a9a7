// Causal depthwise conv1d + SiLU over xpad = [state_in (K-1 rows) ; x (L rows)].
// The op is bandwidth-bound (K multiply-adds per element), so the main kernel
// reads every x row once: a thread owns 8 consecutive channels (one 16-byte
// bf16 vector) and a tile of tokens, and slides the last K-1 input rows along
// in registers; a tile starts from its K-1 halo rows (x rows before it, or
// state_in rows before token 0), so only those are read twice. Each step loads
// kConvBatch rows before it uses any, to keep loads in flight. It runs for
// K <= 4 (Mamba's conv is 4 wide) on rows that allow 16-byte vectors; any
// other shape takes a plain kernel (one thread per output element, K reads).
// A second launch on the same stream shifts the state (one thread per
// channel walking the K-1 state rows in ascending order, reading row L+r of
// xpad before writing row r), so state_out may alias state_in exactly as on
// the CPU. The entry point runs the shared checks (kernels/causal_conv1d.cc)
// and launches the instantiation for x_type and out_type.
#include "kernels/causal_conv1d.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::CeilDiv;
using cuda_launch::DeviceSilu;
using cuda_launch::FromFloat;
using cuda_launch::GridFor;
using cuda_launch::Load8;
using cuda_launch::LoadRaw8;
using cuda_launch::Raw8;
using cuda_launch::RowsOfVec8;
using cuda_launch::Store8;
using cuda_launch::ToFloat;
using cuda_launch::Widen8;
using cuda_launch::WithDeviceType;

constexpr int kConvThreads = 128;    // 8 channels each: 1024 channels a block
constexpr int kConvBatch = 8;        // rows loaded before the first is used
constexpr int kConvMaxTile = 64;     // tokens a block walks (fewer when L is short)
constexpr int kConvMaxWidth = 4;     // the widest K the tiled kernel instantiates
constexpr int kConvBlocksPerSm = 3;  // registers for 3 blocks: 3 · 128 threads · 8 rows of 16 bytes in flight

// Element c of row `row` of xpad (zero where state_in is null).
template <typename In>
__device__ __forceinline__ float PaddedValue(const CausalConv1dParams& p, int64_t x_stride, int64_t row, int64_t c) {
  const int64_t state_rows = p.kernel_width - 1;
  if (row >= state_rows) return ToFloat(static_cast<const In*>(p.x)[(row - state_rows) * x_stride + c]);
  return p.state_in == nullptr ? 0.0f : p.state_in[row * p.channels + c];
}

// Any shape: one thread per output element.
template <typename In, typename Out>
__global__ void CausalConv1dKernel(CausalConv1dParams p, int64_t x_stride) {
  const int64_t count = p.seq_len * p.channels;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = i / p.channels;
    const int64_t c = i - t * p.channels;
    float acc = p.bias == nullptr ? 0.0f : p.bias[c];
    for (int64_t k = 0; k < p.kernel_width; ++k) {
      acc += p.weight[c * p.kernel_width + k] * PaddedValue<In>(p, x_stride, t + k, c);
    }
    static_cast<Out*>(p.out)[i] = FromFloat<Out>(DeviceSilu(acc));
  }
}

// blockIdx.x: a tile of `tile` tokens; blockIdx.y · blockDim.x + threadIdx.x:
// a vector of 8 channels. Window row j holds xpad row t + j for the next
// output t (x row t - kWindow + j), oldest first.
template <typename In, typename Out, int kWidth>
__global__ void __launch_bounds__(kConvThreads, kConvBlocksPerSm)
    CausalConv1dTiledKernel(CausalConv1dParams p, int64_t x_stride, int64_t tile) {
  constexpr int kWindow = kWidth - 1;
  const int64_t c = (blockIdx.y * int64_t{blockDim.x} + threadIdx.x) * 8;
  if (c >= p.channels) return;
  const int64_t t_begin = blockIdx.x * tile;
  const int64_t t_end = t_begin + tile < p.seq_len ? t_begin + tile : p.seq_len;
  const In* x = static_cast<const In*>(p.x) + c;  // (L, 8) of x, row stride x_stride
  Out* out = static_cast<Out*>(p.out) + c;        // (L, 8) of out, row stride channels

  float w[kWidth][8];  // w[k][i]: tap k of channel c + i
  float bias[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
#pragma unroll
    for (int k = 0; k < kWidth; ++k) w[k][i] = p.weight[(c + i) * kWidth + k];
    bias[i] = p.bias == nullptr ? 0.0f : p.bias[c + i];
  }
  float window[kWindow > 0 ? kWindow : 1][8];
#pragma unroll
  for (int j = 0; j < kWindow; ++j) {
    const int64_t row = t_begin - kWindow + j;  // x row; negative: state row kWindow + row
    if (row >= 0) {
      Load8(x + row * x_stride, window[j]);
    } else if (p.state_in != nullptr) {
      Load8(p.state_in + (kWindow + row) * p.channels + c, window[j]);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) window[j][i] = 0.0f;
    }
  }

  for (int64_t t0 = t_begin; t0 < t_end; t0 += kConvBatch) {
    Raw8<In> raw[kConvBatch];
#pragma unroll
    for (int b = 0; b < kConvBatch; ++b) {
      if (t0 + b < t_end) raw[b] = LoadRaw8(x + (t0 + b) * x_stride);
    }
#pragma unroll
    for (int b = 0; b < kConvBatch; ++b) {
      if (t0 + b >= t_end) break;
      float current[8], acc[8];
      Widen8(raw[b], current);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        acc[i] = bias[i];
#pragma unroll
        for (int k = 0; k < kWindow; ++k) acc[i] += w[k][i] * window[k][i];
        acc[i] = DeviceSilu(acc[i] + w[kWindow][i] * current[i]);
      }
      Store8(out + (t0 + b) * p.channels, acc);
#pragma unroll
      for (int j = 0; j < kWindow; ++j) {
#pragma unroll
        for (int i = 0; i < 8; ++i) window[j][i] = j + 1 < kWindow ? window[j + 1][i] : current[i];
      }
    }
  }
}

template <typename In>
__global__ void CausalConv1dStateKernel(CausalConv1dParams p, int64_t x_stride) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= p.channels) return;
  for (int64_t r = 0; r < p.kernel_width - 1; ++r) {
    p.state_out[r * p.channels + c] = PaddedValue<In>(p, x_stride, p.seq_len + r, c);
  }
}

template <typename In, typename Out>
bool FitsTiledKernel(const CausalConv1dParams& p, int64_t x_stride) {
  return p.kernel_width <= kConvMaxWidth && p.channels % 8 == 0 && RowsOfVec8<In>(p.x, x_stride) &&
         RowsOfVec8<Out>(p.out, p.channels) && (p.state_in == nullptr || RowsOfVec8<float>(p.state_in, p.channels));
}

template <typename In, typename Out, int kWidth>
cudaError_t LaunchTiled(const CausalConv1dParams& p, int64_t x_stride, cudaStream_t stream) {
  const int64_t channel_blocks = CeilDiv(p.channels / 8, kConvThreads);
  if (channel_blocks > 65535) return cudaErrorInvalidValue;
  int64_t tile = kConvMaxTile;  // shorter tiles while a short sequence would leave the GPU idle
  while (tile > kConvBatch && CeilDiv(p.seq_len, tile) * channel_blocks < 1024) tile /= 2;
  const int64_t tiles = CeilDiv(p.seq_len, tile);
  if (tiles > INT32_MAX) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(channel_blocks));
  CausalConv1dTiledKernel<In, Out, kWidth><<<grid, kConvThreads, 0, stream>>>(p, x_stride, tile);
  return cudaGetLastError();
}

template <typename In, typename Out>
cudaError_t LaunchConvolution(const CausalConv1dParams& p, int64_t x_stride, cudaStream_t stream) {
  if (FitsTiledKernel<In, Out>(p, x_stride)) {
    switch (p.kernel_width) {
      case 1:
        return LaunchTiled<In, Out, 1>(p, x_stride, stream);
      case 2:
        return LaunchTiled<In, Out, 2>(p, x_stride, stream);
      case 3:
        return LaunchTiled<In, Out, 3>(p, x_stride, stream);
      case 4:
        return LaunchTiled<In, Out, 4>(p, x_stride, stream);
    }
  }
  constexpr int kThreads = 256;
  CausalConv1dKernel<In, Out><<<GridFor(p.seq_len * p.channels, kThreads), kThreads, 0, stream>>>(p, x_stride);
  return cudaGetLastError();
}

template <typename In>
cudaError_t LaunchCausalConv1d(const CausalConv1dParams& p, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t x_stride = params_check::StrideOr(p.x_stride, p.channels);
  if (p.seq_len > 0) {
    const cudaError_t e =
        WithDeviceType(p.out_type, [&](auto out) { return LaunchConvolution<In, decltype(out)>(p, x_stride, stream); });
    if (e != cudaSuccess) return e;
  }
  if (p.state_out != nullptr && p.kernel_width > 1) {
    const int64_t blocks = CeilDiv(p.channels, kThreads);
    if (blocks > INT32_MAX) return cudaErrorInvalidValue;
    CausalConv1dStateKernel<In><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, x_stride);
    return cudaGetLastError();
  }
  return cudaSuccess;
}

}  // namespace

absl::Status CausalConv1d(const CausalConv1dParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckCausalConv1dParams(p));
  return FromCuda("CausalConv1d",
                  WithDeviceType(p.x_type, [&](auto x) { return LaunchCausalConv1d<decltype(x)>(p, stream); }));
}

}  // namespace tessera::cuda
