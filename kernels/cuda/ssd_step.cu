// One-token Mamba-2 state update for a batch of requests. The op is a stream
// over the states (read once, written once: H·P·N·8 bytes a request), so the
// aim is the memory floor: a block is (request, head, 16 rows), a warp owns 4
// state rows and each lane loads its 16-byte slice of all 4 rows before it
// uses any (64 bytes in flight a thread), with B and C of the head's group
// read once a warp; the readouts state·C are warp sums. dt's softplus (with
// dt_bias) and the D skip are applied in the same pass. Each warp reads its
// rows' x before it writes their y, so y may alias x as on the CPU. Rows take
// the 16-byte path when N % 4 == 0 and every pointer allows it (the state's,
// known only on the device, is checked there); otherwise lanes stride over N
// one float at a time. The entry point runs the shared checks
// (kernels/ssd_step.cc) and launches the instantiation for dt's type.
#include "kernels/ssd_step.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::CeilDiv;
using cuda_launch::DeviceSoftplus;
using cuda_launch::ToFloat;
using cuda_launch::WarpSum;
using cuda_launch::WithDeviceType;
using params_check::StrideOr;

constexpr int kStepWarps = 4;
constexpr int kStepRows = 4;  // state rows per warp
constexpr int kStepBlockRows = kStepWarps * kStepRows;
constexpr int kStepBlocksPerSm = 8;  // 32 warps an SM, 64 bytes of state in flight a thread: 64 KB an SM

struct SsdStepStrides {
  int64_t x, dt, b, c, y;  // elements between requests' rows
  bool vec4;               // N % 4 == 0 and B, C rows 16-byte aligned
};

__device__ __forceinline__ float4 Load4(const float* p) { return *reinterpret_cast<const float4*>(p); }

// blockIdx = (block of kStepBlockRows rows, head, request).
template <typename Dt>
__global__ void __launch_bounds__(kStepWarps * 32, kStepBlocksPerSm) SsdStepKernel(SsdStepParams p, SsdStepStrides s) {
  cuda_launch::GridDependencyWait();  // first: see cuda_util.cuh
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t h = blockIdx.y, r = blockIdx.z;
  const int64_t row0 = int64_t{blockIdx.x} * kStepBlockRows + warp * kStepRows;  // channel p of head h
  if (row0 >= p.head_dim) return;
  const int rows = static_cast<int>(min(int64_t{kStepRows}, p.head_dim - row0));
  const int64_t n = p.state_size;
  const int64_t g = h / (p.num_heads / p.num_groups);
  const float* b = p.B + r * s.b + g * n;  // (N)
  const float* c = p.C + r * s.c + g * n;  // (N)
  float* state = (p.states == nullptr ? p.state : p.states[r]) + (h * p.head_dim + row0) * n;  // (rows, N)
  const float* x = p.x + r * s.x + h * p.head_dim + row0;  // (rows)
  float* y = p.y + r * s.y + h * p.head_dim + row0;        // (rows)

  float dt = ToFloat(static_cast<const Dt*>(p.dt)[r * s.dt + h]);
  if (p.dt_bias != nullptr) {
    const float v = DeviceSoftplus(dt + p.dt_bias[h]);
    dt = v < p.dt_min ? p.dt_min : (p.dt_max < v ? p.dt_max : v);
  }
  const float decay = expf(dt * p.A[h]);
  float xs[kStepRows], dt_x[kStepRows], readout[kStepRows];
#pragma unroll
  for (int i = 0; i < kStepRows; ++i) {
    xs[i] = i < rows ? x[i] : 0.0f;
    dt_x[i] = dt * xs[i];
    readout[i] = 0.0f;
  }

  if (s.vec4 && reinterpret_cast<uintptr_t>(state) % 16 == 0) {
    for (int64_t k = 4 * lane; k < n; k += 4 * 32) {
      float4 st[kStepRows];
#pragma unroll
      for (int i = 0; i < kStepRows; ++i) {
        if (i < rows) st[i] = Load4(state + i * n + k);
      }
      const float4 bv = Load4(b + k), cv = Load4(c + k);
#pragma unroll
      for (int i = 0; i < kStepRows; ++i) {
        if (i >= rows) break;
        float4 v;
        v.x = decay * st[i].x + dt_x[i] * bv.x;
        v.y = decay * st[i].y + dt_x[i] * bv.y;
        v.z = decay * st[i].z + dt_x[i] * bv.z;
        v.w = decay * st[i].w + dt_x[i] * bv.w;
        *reinterpret_cast<float4*>(state + i * n + k) = v;
        readout[i] += v.x * cv.x + v.y * cv.y + v.z * cv.z + v.w * cv.w;
      }
    }
  } else {
    for (int64_t k = lane; k < n; k += 32) {
      float st[kStepRows];
#pragma unroll
      for (int i = 0; i < kStepRows; ++i) {
        if (i < rows) st[i] = state[i * n + k];
      }
      const float bk = b[k], ck = c[k];
#pragma unroll
      for (int i = 0; i < kStepRows; ++i) {
        if (i >= rows) break;
        const float v = decay * st[i] + dt_x[i] * bk;
        state[i * n + k] = v;
        readout[i] += v * ck;
      }
    }
  }
  const float skip = p.D == nullptr ? 0.0f : p.D[h];
#pragma unroll
  for (int i = 0; i < kStepRows; ++i) {
    const float sum = WarpSum(readout[i]);  // every lane has read x: y may now overwrite it
    if (lane == i && i < rows) y[i] = sum + skip * xs[i];
  }
}

cudaError_t LaunchSsdStep(const SsdStepParams& p, cudaStream_t stream) {
  if (p.batch == 0) return cudaSuccess;
  const int64_t hp = p.num_heads * p.head_dim, gn = p.num_groups * p.state_size;
  SsdStepStrides s;
  s.x = StrideOr(p.x_stride, hp);
  s.dt = StrideOr(p.dt_stride, p.num_heads);
  s.b = StrideOr(p.b_stride, gn);
  s.c = StrideOr(p.c_stride, gn);
  s.y = StrideOr(p.y_stride, hp);
  s.vec4 = p.state_size % 4 == 0 && s.b % 4 == 0 && s.c % 4 == 0 &&
           reinterpret_cast<uintptr_t>(p.B) % 16 == 0 && reinterpret_cast<uintptr_t>(p.C) % 16 == 0;
  const dim3 grid(static_cast<unsigned>(CeilDiv(p.head_dim, kStepBlockRows)), static_cast<unsigned>(p.num_heads),
                  static_cast<unsigned>(p.batch));
  return WithDeviceType(p.dt_type, [&](auto dt) {
    return cuda_launch::LaunchAfterPrior(SsdStepKernel<decltype(dt)>, grid, kStepWarps * 32, 0, stream, p, s);
  });
}

// Beyond the shared checks: the grid holds one block row per head and per request.
absl::Status CheckSsdStepSupported(const SsdStepParams& p) {
  constexpr int64_t kMaxGridYz = 65535;
  if (p.num_heads > kMaxGridYz || p.batch > kMaxGridYz || p.head_dim > INT32_MAX) {
    return absl::UnimplementedError(absl::StrCat("SsdStep (CUDA): num_heads and batch must be <= ", kMaxGridYz,
                                                 ". Given: ", p.num_heads, " and ", p.batch));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SsdStep(const SsdStepParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckSsdStepParams(p));
  RETURN_IF_ERROR(CheckSsdStepSupported(p));
  return FromCuda("SsdStep", LaunchSsdStep(p, stream));
}

}  // namespace tessera::cuda
