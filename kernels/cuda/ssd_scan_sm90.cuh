// The Hopper SsdScan for bf16 x, B, C at head_dim 64 (kernels/cuda/ssd_scan_sm90.cu),
// which LaunchSsdScanBf16 (kernels/cuda/ssd_scan_bf16.cu) takes when it supports the call.
#pragma once

#include <cuda_runtime.h>

#include "kernels/ssd_scan.h"

namespace tessera::cuda_ssd {

// Params already checked, type bf16: true when head_dim is 64, state_size 64
// or 128, x, B and C rows start on 16-byte boundaries and y on 8.
bool SsdScanSm90Supports(const SsdScanParams& p);

// Enqueues the whole scan on `stream` (SsdScanSm90Supports(p) must hold).
cudaError_t LaunchSsdScanSm90(const SsdScanParams& p, cudaStream_t stream);

}  // namespace tessera::cuda_ssd
