// Plain field filling over Tensor views.
#include "worker/layer_params.h"

#include <cassert>
#include <cmath>

namespace tessera::layer_params {
namespace {

// Column views of the Mamba activations.
Tensor Z(const MambaConfig& m, const MambaActivations& a) { return a.proj.Cols(0, m.d_inner()); }
Tensor Xbc(const MambaConfig& m, const MambaActivations& a) { return a.proj.Cols(m.d_inner(), m.conv_channels()); }
Tensor DtRaw(const MambaConfig& m, const MambaActivations& a) {
  return a.proj.Cols(m.d_inner() + m.conv_channels(), m.num_heads);
}
Tensor X(const MambaConfig& m, const MambaActivations& a) { return a.conv.Cols(0, m.d_inner()); }
Tensor B(const MambaConfig& m, const MambaActivations& a) {
  return a.conv.Cols(m.d_inner(), m.num_groups * m.state_size);
}
Tensor C(const MambaConfig& m, const MambaActivations& a) {
  return a.conv.Cols(m.d_inner() + m.num_groups * m.state_size, m.num_groups * m.state_size);
}

// attention_multiplier where the family sets one, else 1/√D.
float SoftmaxScale(const AttentionConfig& a) {
  return a.softmax_scale > 0 ? a.softmax_scale : 1.0f / std::sqrt(static_cast<float>(a.head_dim));
}

}  // namespace

MambaActivations Rows(const MambaActivations& a, int64_t begin, int64_t count) {
  return {a.proj.Rows(begin, count), a.conv.Rows(begin, count), a.dt.Rows(begin, count), a.y.Rows(begin, count)};
}

LinearParams Linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y, bool accumulate) {
  LinearParams p;
  p.rows = x.rows;
  p.in_features = weight.cols;
  p.out_features = weight.rows;
  p.type = weight.type;
  p.x = x.data;
  p.x_stride = x.stride;
  p.weight = weight.data;
  p.bias = bias.f32();
  p.y = y.data;
  p.y_stride = y.stride;
  p.accumulate = accumulate;
  p.y_type = y.type;
  return p;
}

CastParams Copy(const Tensor& from, const Tensor& to) {
  CastParams p;
  p.rows = from.rows;
  p.width = from.cols;
  p.in_type = from.type;
  p.in = from.data;
  p.in_stride = from.stride;
  p.out_type = to.type;
  p.out = to.data;
  p.out_stride = to.stride;
  return p;
}

RmsNormParams Norm(const ModelConfig& c, const Tensor& x, const Tensor& weight, const Tensor& out) {
  RmsNormParams p;
  p.rows = x.rows;
  p.width = c.hidden_size;
  p.eps = c.norm_eps;
  p.x = x.f32();
  p.x_stride = x.stride;
  p.weight = weight.f32();
  p.out = out.data;
  p.out_type = out.type;
  return p;
}

CausalConv1dParams Conv(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a,
                        const Tensor& state_in, const Tensor& state_out) {
  const Tensor xbc = Xbc(m, a);
  CausalConv1dParams p;
  p.seq_len = xbc.rows;
  p.channels = m.conv_channels();
  p.kernel_width = m.conv_kernel;
  p.x = xbc.data;
  p.x_stride = xbc.stride;
  p.weight = w.conv_weight.f32();
  p.bias = w.conv_bias.f32();
  p.state_in = state_in.f32();
  p.out = a.conv.data;
  p.state_out = state_out.f32();
  p.x_type = xbc.type;
  p.out_type = a.conv.type;
  return p;
}

DtSoftplusParams Dt(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a) {
  const Tensor raw = DtRaw(m, a);
  DtSoftplusParams p;
  p.rows = raw.rows;
  p.num_heads = m.num_heads;
  p.dt_raw = raw.data;
  p.dt_stride = raw.stride;
  p.dt_raw_type = raw.type;
  p.dt_bias = w.dt_bias.f32();
  p.dt_min = m.dt_min;
  p.dt_max = m.dt_max;
  p.out = a.dt.f32();
  return p;
}

ConvStepParams ConvStep(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a,
                        float* const* states) {
  const Tensor xbc = Xbc(m, a);
  ConvStepParams p;
  p.batch = xbc.rows;
  p.channels = m.conv_channels();
  p.kernel_width = m.conv_kernel;
  p.x = xbc.data;
  p.x_stride = xbc.stride;
  p.weight = w.conv_weight.f32();
  p.bias = w.conv_bias.f32();
  p.states = states;
  p.out = a.conv.data;
  p.out_stride = a.conv.stride;
  p.x_type = xbc.type;
  p.out_type = a.conv.type;
  return p;
}

SsdStepParams Step(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a, float* const* states) {
  const Tensor x = X(m, a), b = B(m, a), c = C(m, a), dt_raw = DtRaw(m, a);
  SsdStepParams p;
  p.num_heads = m.num_heads;
  p.head_dim = m.head_dim;
  p.num_groups = m.num_groups;
  p.state_size = m.state_size;
  p.x = x.f32();
  p.dt = dt_raw.data;
  p.A = w.A.f32();
  p.B = b.f32();
  p.C = c.f32();
  p.D = w.D.f32();
  p.y = a.y.f32();
  p.batch = a.conv.rows;
  p.states = states;
  p.x_stride = x.stride;
  p.dt_stride = dt_raw.stride;
  p.b_stride = b.stride;
  p.c_stride = c.stride;
  p.y_stride = a.y.stride;
  p.dt_bias = w.dt_bias.f32();
  p.dt_min = m.dt_min;
  p.dt_max = m.dt_max;
  p.dt_type = dt_raw.type;
  return p;
}

SsdScanParams Scan(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a,
                   const Tensor& initial_state, const Tensor& final_state, const Tensor& log_decay) {
  const Tensor& xbc = a.conv;
  const int64_t bc_width = m.num_groups * m.state_size;
  SsdScanParams p;
  p.seq_len = xbc.rows;
  p.num_heads = m.num_heads;
  p.head_dim = m.head_dim;
  p.num_groups = m.num_groups;
  p.state_size = m.state_size;
  p.chunk_size = m.chunk_size;
  p.type = xbc.type;
  p.x = xbc.Cols(0, m.d_inner()).data;
  p.x_stride = xbc.stride;
  p.dt = a.dt.f32();
  p.dt_stride = a.dt.stride;
  p.A = w.A.f32();
  p.B = xbc.Cols(m.d_inner(), bc_width).data;
  p.b_stride = xbc.stride;
  p.C = xbc.Cols(m.d_inner() + bc_width, bc_width).data;
  p.c_stride = xbc.stride;
  p.D = w.D.f32();
  p.initial_state = initial_state.f32();
  p.y = a.y.f32();
  p.final_state = final_state.f32();
  p.log_decay = log_decay.f32();
  return p;
}

Tensor ConvC(const MambaConfig& m, const MambaActivations& a) { return C(m, a); }

SsdAddInitialStateParams AddInitialState(const MambaConfig& m, const MambaTensors& w, const MambaActivations& a,
                                         const Tensor& c, const Tensor& h_in, const Tensor& final_state) {
  SsdAddInitialStateParams p;
  p.seq_len = a.conv.rows;
  p.num_heads = m.num_heads;
  p.head_dim = m.head_dim;
  p.num_groups = m.num_groups;
  p.state_size = m.state_size;
  p.dt = a.dt.f32();
  p.dt_stride = a.dt.stride;
  p.A = w.A.f32();
  p.C = c.f32();
  p.c_stride = c.stride;
  p.initial_state = h_in.f32();
  p.y = a.y.f32();
  p.final_state = final_state.f32();
  return p;
}

SsdComposeParams Compose(const MambaConfig& m, const Tensor& summaries, int64_t rank, const Tensor& h_in) {
  SsdComposeParams p;
  p.ranks_before = rank;
  p.num_heads = m.num_heads;
  p.per_head = m.head_dim * m.state_size;
  p.summaries = summaries.f32();
  p.h_in = h_in.f32();
  return p;
}

GatedRmsNormParams GatedNorm(const ModelConfig& c, const MambaTensors& w, const MambaActivations& a) {
  const Tensor z = Z(c.mamba, a);
  GatedRmsNormParams p;
  p.rows = a.y.rows;
  p.width = c.mamba.d_inner();
  p.group_size = c.mamba.norm_group_size();
  p.eps = c.norm_eps;
  p.y = a.y.f32();
  p.y_stride = a.y.stride;
  p.z = z.data;
  p.z_stride = z.stride;
  p.weight = w.norm.f32();
  p.out = z.data;  // over z, in place
  p.out_stride = z.stride;
  p.type = z.type;
  return p;
}

Tensor GatedNormOut(const MambaConfig& m, const MambaActivations& a) { return Z(m, a); }

RopeParams Rope(const AttentionConfig& a, const Tensor& x, int64_t heads, int64_t position0) {
  RopeParams p;
  p.num_tokens = x.rows;
  p.head_dim = a.head_dim;
  p.rotary_dim = a.rotary_dim;
  p.theta = a.rope_theta;
  p.position0 = position0;
  p.num_heads = heads;
  p.x = x.data;
  p.x_stride = x.stride;
  p.type = x.type;
  return p;
}

AttentionParams Attention(const AttentionConfig& a, const Tensor& q, int64_t q_position0, const Tensor& k,
                          const Tensor& v, int64_t kv_position0, const Tensor& out, const Tensor& lse) {
  AttentionParams p;
  p.q_len = q.rows;
  p.kv_len = k.rows;
  p.num_q_heads = a.num_heads;
  p.num_kv_heads = a.num_kv_heads;
  p.head_dim = a.head_dim;
  p.type = q.type;
  p.q = q.data;
  p.q_stride = q.stride;
  p.k = k.data;
  p.k_stride = k.stride;
  p.v = v.data;
  p.v_stride = v.stride;
  p.q_position0 = q_position0;
  p.kv_position0 = kv_position0;
  p.causal = true;
  p.scale = SoftmaxScale(a);
  p.out = out.f32();
  p.lse = lse.f32();
  return p;
}

DecodeAttentionParams DecodeAttention(const AttentionConfig& a, const Tensor& q, const void* const* k,
                                      const void* const* v, const int32_t* kv_lens, const Tensor& out,
                                      const Tensor& lse) {
  DecodeAttentionParams p;
  p.batch = q.rows;
  p.num_q_heads = a.num_heads;
  p.num_kv_heads = a.num_kv_heads;
  p.head_dim = a.head_dim;
  p.type = q.type;
  p.q = q.data;
  p.q_stride = q.stride;
  p.k = k;
  p.v = v;
  p.kv_lens = kv_lens;
  p.scale = SoftmaxScale(a);
  p.out = out.f32();
  p.lse = lse.f32();
  return p;
}

DecodeRopeAppendParams DecodeRopeAppend(const AttentionConfig& a, const Tensor& q, const Tensor& k_new,
                                        const Tensor& v_new, const int32_t* positions, const float* inv_freq,
                                        void* const* k_cache, void* const* v_cache, const int32_t* kv_lens) {
  DecodeRopeAppendParams p;
  p.batch = q.rows;
  p.num_q_heads = a.num_heads;
  p.num_kv_heads = a.num_kv_heads;
  p.head_dim = a.head_dim;
  p.rotary_dim = a.rotary_dim;
  p.theta = a.rope_theta;
  p.type = q.type;
  p.q = q.data;
  p.q_stride = q.stride;
  p.k = k_new.data;
  p.k_stride = k_new.stride;
  p.v = v_new.data;
  p.v_stride = v_new.stride;
  p.positions = positions;
  p.inv_freq = inv_freq;
  p.k_cache = k_cache;
  p.v_cache = v_cache;
  p.kv_lens = kv_lens;
  return p;
}

AttentionMergeParams Merge(const AttentionConfig& a, const Tensor& out, const Tensor& lse, const Tensor& part_out,
                           const Tensor& part_lse) {
  AttentionMergeParams p;
  p.rows = out.rows * a.num_heads;
  p.head_dim = a.head_dim;
  p.out = out.f32();
  p.lse = lse.f32();
  p.part_out = part_out.f32();
  p.part_lse = part_lse.f32();
  return p;
}

SiluMulParams SiluMul(const Tensor& gate, const Tensor& up, const Tensor& out) {
  SiluMulParams p;
  p.rows = out.rows;
  p.width = out.cols;
  p.gate = gate.data;
  p.gate_stride = gate.stride;
  p.up = up.data;
  p.up_stride = up.stride;
  p.out = out.data;
  p.out_stride = out.stride;
  p.type = out.type;
  return p;
}

ReluSquaredParams ReluSquaredInPlace(const Tensor& x) {
  assert(x.packed());
  ReluSquaredParams p;
  p.count = x.rows * x.cols;
  p.x = x.data;
  p.out = x.data;
  p.type = x.type;
  return p;
}

ScaleAddParams ScaleAdd(float alpha, const Tensor& x, const Tensor& y) {
  ScaleAddParams p;
  p.rows = y.rows;
  p.width = y.cols;
  p.alpha = alpha;
  p.x = x.f32();
  p.x_stride = x.stride;
  p.beta = 1.0f;
  p.y = y.f32();
  p.y_stride = y.stride;
  return p;
}

ScaleAddParams Scale(float beta, const Tensor& y) {
  ScaleAddParams p;
  p.rows = y.rows;
  p.width = y.cols;
  p.beta = beta;
  p.y = y.f32();
  p.y_stride = y.stride;
  return p;
}

MoeRouteParams Route(const MoeConfig& m, const MoeTensors& w, const Tensor& logits, const Tensor& ids,
                     const Tensor& weights) {
  MoeRouteParams p;
  p.tokens = logits.rows;
  p.experts = m.experts;
  p.top_k = m.top_k;
  p.kind = m.routing == MoeRouting::kSigmoidBiasedTopK ? MoeRouteKind::kSigmoidBiased : MoeRouteKind::kSoftmaxTopK;
  p.n_group = m.n_group;
  p.topk_group = m.topk_group;
  p.norm_topk_prob = m.norm_topk_prob;
  p.routed_scaling_factor = m.routed_scaling_factor;
  p.logits = logits.f32();
  p.logits_stride = logits.stride;
  p.correction_bias = w.correction_bias.f32();
  p.expert_ids = static_cast<int32_t*>(ids.data);
  p.expert_weights = weights.f32();
  return p;
}

MoeExpertsParams Experts(const ModelConfig& c, const MoeTensors& w, const Tensor& x, const Tensor& ids,
                         const Tensor& weights, const Tensor& y) {
  const MoeConfig& m = c.moe;
  MoeExpertsParams p;
  p.tokens = x.rows;
  p.hidden = c.hidden_size;
  p.experts = m.experts;
  p.top_k = m.top_k;
  p.intermediate = m.expert_intermediate_size;
  p.activation = m.activation == MlpActivation::kSwiGlu ? MoeExpertActivation::kSwiGluFused : MoeExpertActivation::kRelu2;
  p.type = x.type;
  p.x = x.data;
  p.x_stride = x.stride;
  p.expert_ids = static_cast<const int32_t*>(ids.data);
  p.expert_weights = weights.f32();
  p.up = w.experts_up.data;
  p.down = w.experts_down.data;
  p.y = y.f32();
  p.y_stride = y.stride;
  return p;
}

}  // namespace tessera::layer_params
