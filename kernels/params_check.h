// Parameter checks of the kernel ops, one per op, shared by every backend.
//
// Each kernels/<op>.h states one contract (sizes, strides, which pointers may
// be null, which may alias) that the CPU reference and the CUDA kernels both
// implement, so one set of checks enforces it: every backend calls these
// before it touches memory, and a bad request gets the same status code and
// the same message whichever backend runs it. A check belongs here when it
// follows from the contract; a backend adds its own limits (CUDA attention's
// largest head_dim, say) in its own code, after these.
//
// Each returns OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the
// value given. None reads the memory the params point at, except
// CheckEmbeddingTokenIds, which is handed host memory for that purpose.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/causal_conv1d.h"
#include "kernels/dt_softplus.h"
#include "kernels/embedding.h"
#include "kernels/gated_rms_norm.h"
#include "kernels/linear.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/ssd_scan.h"
#include "kernels/ssd_step.h"

namespace tessera {

// `op` names the caller in messages (MixedLinear reuses these checks).
absl::Status CheckLinearParams(const LinearParams& p, absl::string_view op = "Linear");
absl::Status CheckEmbeddingParams(const EmbeddingParams& p);
// Every id of `ids` (host memory, num_tokens of them) lies in [0, vocab_size).
// Run after CheckEmbeddingParams and before any row is written.
absl::Status CheckEmbeddingTokenIds(const int32_t* ids, int64_t num_tokens, int64_t vocab_size);
absl::Status CheckRmsNormParams(const RmsNormParams& p);
absl::Status CheckGatedRmsNormParams(const GatedRmsNormParams& p);
absl::Status CheckDtSoftplusParams(const DtSoftplusParams& p);
absl::Status CheckCausalConv1dParams(const CausalConv1dParams& p);
absl::Status CheckSsdScanParams(const SsdScanParams& p);
absl::Status CheckSsdAddInitialStateParams(const SsdAddInitialStateParams& p);
absl::Status CheckSsdStepParams(const SsdStepParams& p);
absl::Status CheckRopeParams(const RopeParams& p);
absl::Status CheckAttentionParams(const AttentionParams& p);
absl::Status CheckAttentionMergeParams(const AttentionMergeParams& p);
absl::Status CheckSiluMulParams(const SiluMulParams& p);
absl::Status CheckReluSquaredParams(const ReluSquaredParams& p);

}  // namespace tessera
