// The op parameters of each step of a block, built from the model config and
// the buffers of one forward pass. Shared by the CPU and the CUDA forward
// passes, so that the two differ only in where their buffers live and which
// backend runs each op (a layout mistake cannot hide in one of them).
//
// Layouts (DESIGN.md): the Mamba in_proj output is (L, [z | xBC | dt]) with
// row stride in_proj_width; the conv output is (L, [x | B | C]) with row
// stride conv_channels.
#pragma once

#include <cstdint>

#include "kernels/attention.h"
#include "kernels/causal_conv1d.h"
#include "kernels/dt_softplus.h"
#include "kernels/gated_rms_norm.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/ssd_scan.h"
#include "kernels/ssd_step.h"
#include "model/model_config.h"

namespace tessera::block_params {

// The Mamba mixer's per-layer tensors that the ops read (any backend's).
struct MambaTensors {
  const float* conv_weight = nullptr;  // (C, K)
  const float* conv_bias = nullptr;    // (C) or null
  const float* dt_bias = nullptr;      // (H)
  const float* A = nullptr;            // (H)
  const float* D = nullptr;            // (H)
  const float* norm = nullptr;         // (d_inner)
};

// conv + SiLU of xBC = proj + d_inner; state_in null means zeros.
CausalConv1dParams Conv(const MambaConfig& m, const MambaTensors& w, int64_t L, const float* proj,
                        const float* state_in, float* conv_out, float* state_out);
// dt (L, H) from the dt columns of proj.
DtSoftplusParams Dt(const MambaConfig& m, const MambaTensors& w, int64_t L, const float* proj, float* dt);
// The one-token update of `state` from conv_out (1, C).
SsdStepParams Step(const MambaConfig& m, const MambaTensors& w, const float* conv_out, const float* dt, float* state,
                   float* y);
// The chunked scan of conv_out (L, C); initial_state null means zeros.
SsdScanParams Scan(const MambaConfig& m, const MambaTensors& w, int64_t L, const float* conv_out, const float* dt,
                   const float* initial_state, float* y, float* final_state, float* log_decay);
// y += h_in's contribution, final_state += Λ · h_in.
SsdAddInitialStateParams AddInitialState(const MambaConfig& m, const MambaTensors& w, int64_t L,
                                         const float* conv_out, const float* dt, const float* h_in, float* y,
                                         float* final_state);
// y (L, d_inner) normed in place, gated by z (the first d_inner columns of proj).
GatedRmsNormParams GatedNorm(const ModelConfig& c, const MambaTensors& w, int64_t L, const float* proj, float* y);

// RMSNorm of `rows` hidden-size rows.
RmsNormParams Norm(const ModelConfig& c, int64_t rows, const float* x, const float* weight, float* out);
// RoPE in place on x (L, heads, head_dim) at global positions position0, ...
RopeParams Rope(const AttentionConfig& a, int64_t L, int64_t position0, int64_t heads, float* x);
// Causal GQA attention of L query rows at q_position0 over kv_len rows at
// kv_position0; q, k, v are left for the caller (their type is the backend's).
AttentionParams Attention(const AttentionConfig& a, int64_t L, int64_t q_position0, int64_t kv_len,
                          int64_t kv_position0, float* out, float* lse);
// Merge of a partial (out, lse) over L query rows into the accumulator.
AttentionMergeParams Merge(const AttentionConfig& a, int64_t L, float* out, float* lse, const float* part_out,
                           const float* part_lse);

}  // namespace tessera::block_params
