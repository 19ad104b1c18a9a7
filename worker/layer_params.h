// The op params of each step of a layer, built from the model config, the
// model's tensors and the Tensors of one forward pass: the one place that
// knows column offsets and strides. Used by the layer loop (forward.cc) for
// every backend, so a layout mistake cannot hide in one of them.
//
// Layouts (DESIGN.md): the Mamba in_proj output is (L, [z | xBC | dt]) with
// row stride in_proj_width; the conv output is (L, [x | B | C]) with row
// stride conv_channels; the gated norm writes its output over z, where the
// out_proj reads it. Element types come from the Tensors: each op's params
// take the type of the views they are built from.
#pragma once

#include <cstdint>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/cast.h"
#include "kernels/causal_conv1d.h"
#include "kernels/conv_step.h"
#include "kernels/decode_attention.h"
#include "kernels/decode_rope_append.h"
#include "kernels/dt_softplus.h"
#include "kernels/gated_rms_norm.h"
#include "kernels/linear.h"
#include "kernels/moe_experts.h"
#include "kernels/moe_route.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/scale_add.h"
#include "kernels/ssd_compose.h"
#include "kernels/ssd_scan.h"
#include "kernels/ssd_step.h"
#include "model/model_config.h"
#include "worker/model_tensors.h"
#include "worker/tensor.h"

namespace tessera::layer_params {

// One Mamba mixer's activations in a forward pass of L tokens.
struct MambaActivations {
  Tensor proj;  // (L, [z | xBC | dt]) in the matrix type; z later holds the gated norm's output
  Tensor conv;  // (L, [x | B | C]) after conv + SiLU: the matrix type, or fp32 for the one-token step
  Tensor dt;    // (L, H) fp32, after softplus and clamp
  Tensor y;     // (L, d_inner) fp32, the scan's output
};

// Rows [begin, begin + count) of every activation: one request's rows of a
// pass over several.
MambaActivations Rows(const MambaActivations& a, int64_t begin, int64_t count);

// y = x · Wᵀ (+ bias), or y += ...; x in the weight's type, y fp32 or (bf16
// weights) bf16.
LinearParams Linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y, bool accumulate);
// to = from, converting the element type; same (rows, cols).
CastParams Copy(const Tensor& from, const Tensor& to);
// RMSNorm of x's rows (fp32) into out (packed, fp32 or bf16).
RmsNormParams Norm(const ModelConfig& c, const Tensor& x, const Tensor& weight, const Tensor& out);

// conv + SiLU of xBC; state_in empty means zeros, state_out may be empty.
CausalConv1dParams Conv(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a,
                        const Tensor& state_in, const Tensor& state_out);
DtSoftplusParams Dt(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a);
// The one-token conv update of every row of `a` (one request each), each on
// its own conv state: `states` (rows) pointers to (K-1, C) fp32, in the
// backend's memory; a.conv (fp32) receives x, B, C.
ConvStepParams ConvStep(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a,
                        float* const* states);
// The one-token SSM update of every row of `a`, each on its own state:
// `states` (rows) pointers to (H, P·N) fp32; reads the raw dt columns of
// a.proj (softplus and clamp inside) and x, B, C of a.conv (fp32); writes a.y.
SsdStepParams Step(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a, float* const* states);
// The chunked scan over a.conv (L, [x | B | C]) in its type (bf16 runs on
// tensor cores); initial_state empty means zeros.
SsdScanParams Scan(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a,
                   const Tensor& initial_state, const Tensor& final_state, const Tensor& log_decay);
// The C columns of a.conv (L, G·N).
Tensor ConvC(const MambaConfig& m, const MambaActivations& a);
// y += h_in's contribution, final_state += Λ · h_in; c is ConvC, or its fp32
// copy when a.conv is not fp32.
SsdAddInitialStateParams AddInitialState(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a,
                                         const Tensor& c, const Tensor& h_in, const Tensor& final_state);
// h_in of shard `rank` from the all-gathered summaries (ranks, H + H·P·N).
SsdComposeParams Compose(const MambaConfig& m, const Tensor& summaries, int64_t rank, const Tensor& h_in);
// y normed, gated by z (the first d_inner columns of proj), written over z
// in z's type: the out_proj's operand, GatedNormOut.
GatedRmsNormParams GatedNorm(const ModelConfig& c, const MambaTensors& w, const MambaActivations& a);
// Where GatedNorm writes: (L, d_inner), the z columns of a.proj.
Tensor GatedNormOut(const MambaConfig& m, const MambaActivations& a);

// RoPE in place on x (L, heads·D) at global positions position0, ...
RopeParams Rope(const AttentionConfig& a, const Tensor& x, int64_t heads, int64_t position0);
// Causal GQA attention of q (L, Hq·D) at q_position0 over k, v (kv_len,
// Hkv·D) at kv_position0; out (L, Hq·D), lse (L, Hq) fp32.
AttentionParams Attention(const AttentionConfig& a, const Tensor& q, int64_t q_position0, const Tensor& k,
                          const Tensor& v, int64_t kv_position0, const Tensor& out, const Tensor& lse);
// Attention of every row of q (L, Hq·D; one request each) over its own K/V:
// `k`, `v` (L) pointers to (kv_lens[r], Hkv·D) rows of `kv_type`, `kv_lens`
// (L) int32, all in the backend's memory; out (L, Hq·D), lse (L, Hq) fp32.
DecodeAttentionParams DecodeAttention(const AttentionConfig& a, const Tensor& q, const void* const* k,
                                      const void* const* v, const int32_t* kv_lens, const Tensor& out,
                                      const Tensor& lse);
// A decode step's RoPE and K/V append, every row at once: q (L, Hq·D) and
// k_new (L, Hkv·D) rotated at positions (L) int32, then k_new and v_new
// (L, Hkv·D) written to row kv_lens[r] - 1 of each row's caches (k_cache,
// v_cache: (L) pointers); inv_freq (rotary_dim / 2) fp32. All in the
// backend's memory.
DecodeRopeAppendParams DecodeRopeAppend(const AttentionConfig& a, const Tensor& q, const Tensor& k_new,
                                        const Tensor& v_new, const int32_t* positions, const float* inv_freq,
                                        void* const* k_cache, void* const* v_cache, const int32_t* kv_lens);
// Merge of a partial (out, lse) into the accumulator.
AttentionMergeParams Merge(const AttentionConfig& a, const Tensor& out, const Tensor& lse, const Tensor& part_out,
                           const Tensor& part_lse);

// out = silu(gate) · up, row by row; gate and up may be column ranges of one
// fused [gate | up] projection, and out the gate's own columns.
SiluMulParams SiluMul(const Tensor& gate, const Tensor& up, const Tensor& out);
// x = relu(x)², in place (x packed).
ReluSquaredParams ReluSquaredInPlace(const Tensor& x);

// y += alpha · x (a block output scaled into the residual stream).
ScaleAddParams ScaleAdd(float alpha, const Tensor& x, const Tensor& y);
// y *= beta, in place.
ScaleAddParams Scale(float beta, const Tensor& y);

// The MoE choice from router logits (L, E) fp32: ids (L, k) int32 (4-byte
// slots of a scratch tensor), weights (L, k) fp32.
MoeRouteParams Route(const MoeConfig& m, const MoeTensors& w, const Tensor& logits, const Tensor& ids,
                     const Tensor& weights);
// y (L, hidden) fp32 += the chosen experts of x (L, hidden) (in the experts' type), weighted.
MoeExpertsParams Experts(const ModelConfig& c, const MoeTensors& w, const Tensor& x, const Tensor& ids,
                         const Tensor& weights, const Tensor& y);

}  // namespace tessera::layer_params
