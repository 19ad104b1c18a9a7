// One-token conv update over a batch, one thread per (request, channel):
// the thread walks its channel's K-1 state rows oldest first, adding each
// tap and writing the row one slot older as soon as it has read it, then adds
// x's tap and writes x as the newest row. Only that thread touches the
// channel's state, so the update is in place; consecutive threads take
// consecutive channels, so every state row, x and out are read and written
// coalesced. Taps are summed in k order after the bias, as on the CPU. The
// entry point runs the shared checks (kernels/conv_step.cc) and launches the
// instantiation for x_type and out_type.
#include "kernels/conv_step.h"

#include "absl/strings/str_cat.h"
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
using cuda_launch::ToFloat;
using cuda_launch::WithDeviceType;
using params_check::StrideOr;

constexpr int kConvStepThreads = 256;
constexpr int64_t kMaxGridY = 65535;

// blockIdx.x: a block of channels, blockIdx.y: the request.
template <typename In, typename Out>
__global__ void __launch_bounds__(kConvStepThreads) ConvStepKernel(ConvStepParams p, int64_t x_stride,
                                                                   int64_t out_stride) {
  cuda_launch::GridDependencyWait();  // first: see cuda_util.cuh
  const int64_t c = blockIdx.x * int64_t{kConvStepThreads} + threadIdx.x;
  const int64_t r = blockIdx.y;
  if (c >= p.channels) return;
  const int64_t width = p.kernel_width, channels = p.channels;
  const float* w = p.weight + c * width;  // (K)
  const float x = ToFloat(static_cast<const In*>(p.x)[r * x_stride + c]);
  float acc = p.bias == nullptr ? 0.0f : p.bias[c];
  if (width > 1) {
    float* state = p.states[r] + c;  // column c of (K-1, C)
    for (int64_t k = 0; k < width - 1; ++k) {
      const float s = state[k * channels];
      acc += w[k] * s;
      if (k > 0) state[(k - 1) * channels] = s;
    }
    state[(width - 2) * channels] = x;
  }
  acc += w[width - 1] * x;
  static_cast<Out*>(p.out)[r * out_stride + c] = FromFloat<Out>(DeviceSilu(acc));
}

cudaError_t LaunchConvStep(const ConvStepParams& p, cudaStream_t stream) {
  if (p.batch == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(CeilDiv(p.channels, kConvStepThreads)), static_cast<unsigned>(p.batch));
  const int64_t x_stride = StrideOr(p.x_stride, p.channels), out_stride = StrideOr(p.out_stride, p.channels);
  return WithDeviceType(p.x_type, [&](auto x) {
    return WithDeviceType(p.out_type, [&](auto out) {
      return cuda_launch::LaunchAfterPrior(ConvStepKernel<decltype(x), decltype(out)>, grid, kConvStepThreads, 0,
                                           stream, p, x_stride, out_stride);
    });
  });
}

// Beyond the shared checks: one grid row per request.
absl::Status CheckConvStepSupported(const ConvStepParams& p) {
  if (p.batch > kMaxGridY || CeilDiv(p.channels, kConvStepThreads) > INT32_MAX) {
    return absl::UnimplementedError(
        absl::StrCat("ConvStep (CUDA): batch must be <= ", kMaxGridY, ". Given: ", p.batch));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ConvStep(const ConvStepParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckConvStepParams(p));
  RETURN_IF_ERROR(CheckConvStepSupported(p));
  return FromCuda("ConvStep", LaunchConvStep(p, stream));
}

}  // namespace tessera::cuda
