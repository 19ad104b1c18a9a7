// The GEMV behind cuda::Linear for the few-row bf16 products of a decode step
// (kernels/cuda/linear_gemv.cu), as its callers see it: cuda::Linear sends a
// product here when LinearGemvTakes says so, and bench/decode_step_bench times
// its configurations against cuBLAS.
//
// A decode step reads every weight once for a handful of rows, so the product
// is a pass over W at copy speed. Each block owns 16 output features (the
// mma's M); its warps share K in steps of 32 k, dealt round-robin (the warps
// read neighbouring 64-byte pieces of the same rows at any time), each lane
// loading 16 bytes of two W rows and of one x row a step, `unroll` steps a
// batch, the next batch's loads issued before this batch's mmas (two batches
// of registers, used in turn).
// The dot products run on the tensor cores (mma m16n8k16, fp32 accumulate)
// with W as A (16 features × 16 k) and the x rows as B (16 k × 8 rows; rows
// past `rows` and features past N read a real row instead and feed outputs
// that are never stored): a sum over k does not care in which order k comes, so a
// lane's 8 consecutive k of a 16-byte load stand in for the fragment's k
// positions, the same permutation in A and B. The warps' partial sums meet in
// shared memory in warp order; the epilogue adds the bias and the accumulated
// y in fp32 and rounds once. Deterministic: no atomics, a fixed order.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/linear.h"

namespace tessera::cuda {

// The most rows (x rows, y rows) the GEMV takes: the mma's N.
constexpr int64_t kLinearGemvMaxRows = 8;

struct LinearGemvConfig {
  int warps = 0;   // warps a block (1, 2, 4, 8 or 16) sharing one 16-feature tile's K; 0: the default
  int unroll = 0;  // 32-k steps a batch of loads (2 or 4); two batches in flight; 0: the default
};

// From this many output features on, cuda::Linear leaves a product to cuBLAS:
// with N that large cuBLAS reads W in one kernel at copy speed (90-101% of
// it on in_proj and the MLP's up projection, 8B shapes), where the GEMV
// reaches 88-92%; below it cuBLAS splits K over a second reduction kernel and
// the GEMV is faster (bench/RESULTS.md, 2026-12-04).
constexpr int64_t kLinearGemvCublasFeatures = 16384;

// Whether the GEMV can run `p` (checked by CheckLinearParams, rows >= 1):
// bf16 x and W, rows <= kLinearGemvMaxRows, in_features and the x row stride
// multiples of 8, x and W 16-byte aligned. y and bias may have any alignment.
bool LinearGemvApplies(const LinearParams& p);

// Whether cuda::Linear sends `p` here: it applies and out_features <
// kLinearGemvCublasFeatures.
bool LinearGemvTakes(const LinearParams& p);

// The configuration LinearGemv uses for `p` when given zeros (warps or unroll).
LinearGemvConfig LinearGemvDefaultConfig(const LinearParams& p);

// Enqueues y [+]= x · Wᵀ (+ bias) for `p` (LinearGemvApplies(p)) on `stream`;
// INVALID_ARGUMENT for a product it does not take or a configuration outside
// the values above.
absl::Status LinearGemv(const LinearParams& p, LinearGemvConfig config, CudaStream stream);

}  // namespace tessera::cuda
