// The tensor-core SsdScan for bf16 x, B, C (kernels/cuda/ssd_scan_bf16.cu),
// which kernels/cuda/ssd_scan.cu's entry point calls after the shared checks.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/ssd_scan.h"

namespace tessera::cuda_ssd {

// The largest state_size the bf16 kernel instantiates.
constexpr int64_t kSsdBf16MaxStateSize = 256;

// UNIMPLEMENTED beyond what the bf16 kernel instantiates (state_size) or
// launches (one block per head and head_dim tile).
absl::Status CheckSsdScanBf16Supported(const SsdScanParams& p);

// Enqueues the whole scan (params checked, type kBF16) on `stream`.
cudaError_t LaunchSsdScanBf16(const SsdScanParams& p, cudaStream_t stream);

}  // namespace tessera::cuda_ssd
