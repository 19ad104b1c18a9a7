// cuBLAS, resolved at first use with dlopen rather than linked.
//
// Why: libcublasLt carries about 94 KB of static TLS. Linked at startup, that
// TLS is part of every thread's stack, and libraries that create threads with
// small fixed stacks fail: civetweb (under prometheus-cpp's metrics endpoint)
// asks for 100 KB stacks and could not start a thread in a process linked
// against cuBLAS. Loaded with dlopen, cuBLAS's TLS is allocated per thread on
// demand instead. It also keeps the 600 MB library out of processes that
// never run a GEMM on the GPU (the coordinator, CPU workers).
#pragma once

#include <cublas_v2.h>

#include "absl/status/statusor.h"

namespace tessera::cuda_host {

// cublasGemmEx has a C++ overload (cudaDataType compute type); name the C one.
using CublasGemmExFn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                          const void*, const void*, cudaDataType, int, const void*, cudaDataType,
                                          int, const void*, void*, cudaDataType, int, cublasComputeType_t,
                                          cublasGemmAlgo_t);

struct CublasApi {
  decltype(&cublasCreate_v2) Create = nullptr;
  decltype(&cublasDestroy_v2) Destroy = nullptr;
  decltype(&cublasSetStream_v2) SetStream = nullptr;
  decltype(&cublasSetWorkspace_v2) SetWorkspace = nullptr;
  decltype(&cublasSetMathMode) SetMathMode = nullptr;
  decltype(&cublasSgemm_v2) Sgemm = nullptr;
  CublasGemmExFn GemmEx = nullptr;
  decltype(&cublasGetStatusName) GetStatusName = nullptr;
  decltype(&cublasGetStatusString) GetStatusString = nullptr;
};

// The entry points of libcublas.so.<major this build was compiled against>,
// loaded once per process. FAILED_PRECONDITION naming the library and
// dlerror() when it cannot be loaded or lacks a symbol.
absl::StatusOr<const CublasApi*> Cublas();

}  // namespace tessera::cuda_host
