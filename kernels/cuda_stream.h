// The CUDA stream type as the op headers name it, without any CUDA include:
// CudaStream is cudaStream_t (CUstream_st*), so code that never touches CUDA
// can still declare the cuda:: entry points. nullptr is the legacy default stream.
#pragma once

struct CUstream_st;

namespace tessera {
using CudaStream = CUstream_st*;
}  // namespace tessera
