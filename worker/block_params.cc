// Plain field filling; the one place that knows the column offsets.
#include "worker/block_params.h"

#include <cmath>

namespace tessera::block_params {
namespace {

const float* XbcOf(const MambaConfig& m, const float* proj) { return proj + m.d_inner(); }
const float* DtRawOf(const MambaConfig& m, const float* proj) { return proj + m.d_inner() + m.conv_channels(); }
const float* BOf(const MambaConfig& m, const float* conv_out) { return conv_out + m.d_inner(); }
const float* COf(const MambaConfig& m, const float* conv_out) {
  return conv_out + m.d_inner() + m.num_groups * m.state_size;
}

}  // namespace

CausalConv1dParams Conv(const MambaConfig& m, const MambaTensors& w, int64_t L, const float* proj,
                        const float* state_in, float* conv_out, float* state_out) {
  CausalConv1dParams p;
  p.seq_len = L;
  p.channels = m.conv_channels();
  p.kernel_width = m.conv_kernel;
  p.x = XbcOf(m, proj);
  p.x_stride = m.in_proj_width();
  p.weight = w.conv_weight;
  p.bias = w.conv_bias;
  p.state_in = state_in;
  p.out = conv_out;
  p.state_out = state_out;
  return p;
}

DtSoftplusParams Dt(const MambaConfig& m, const MambaTensors& w, int64_t L, const float* proj, float* dt) {
  DtSoftplusParams p;
  p.rows = L;
  p.num_heads = m.num_heads;
  p.dt_raw = DtRawOf(m, proj);
  p.dt_stride = m.in_proj_width();
  p.dt_bias = w.dt_bias;
  p.dt_min = m.dt_min;
  p.dt_max = m.dt_max;
  p.out = dt;
  return p;
}

SsdStepParams Step(const MambaConfig& m, const MambaTensors& w, const float* conv_out, const float* dt, float* state,
                   float* y) {
  SsdStepParams p;
  p.num_heads = m.num_heads;
  p.head_dim = m.head_dim;
  p.num_groups = m.num_groups;
  p.state_size = m.state_size;
  p.x = conv_out;
  p.dt = dt;
  p.A = w.A;
  p.B = BOf(m, conv_out);
  p.C = COf(m, conv_out);
  p.D = w.D;
  p.state = state;
  p.y = y;
  return p;
}

SsdScanParams Scan(const MambaConfig& m, const MambaTensors& w, int64_t L, const float* conv_out, const float* dt,
                   const float* initial_state, float* y, float* final_state, float* log_decay) {
  SsdScanParams p;
  p.seq_len = L;
  p.num_heads = m.num_heads;
  p.head_dim = m.head_dim;
  p.num_groups = m.num_groups;
  p.state_size = m.state_size;
  p.chunk_size = m.chunk_size;
  p.x = conv_out;
  p.x_stride = m.conv_channels();
  p.dt = dt;
  p.A = w.A;
  p.B = BOf(m, conv_out);
  p.b_stride = m.conv_channels();
  p.C = COf(m, conv_out);
  p.c_stride = m.conv_channels();
  p.D = w.D;
  p.initial_state = initial_state;
  p.y = y;
  p.final_state = final_state;
  p.log_decay = log_decay;
  return p;
}

SsdAddInitialStateParams AddInitialState(const MambaConfig& m, const MambaTensors& w, int64_t L,
                                         const float* conv_out, const float* dt, const float* h_in, float* y,
                                         float* final_state) {
  SsdAddInitialStateParams p;
  p.seq_len = L;
  p.num_heads = m.num_heads;
  p.head_dim = m.head_dim;
  p.num_groups = m.num_groups;
  p.state_size = m.state_size;
  p.dt = dt;
  p.A = w.A;
  p.C = COf(m, conv_out);
  p.c_stride = m.conv_channels();
  p.initial_state = h_in;
  p.y = y;
  p.final_state = final_state;
  return p;
}

GatedRmsNormParams GatedNorm(const ModelConfig& c, const MambaTensors& w, int64_t L, const float* proj, float* y) {
  GatedRmsNormParams p;
  p.rows = L;
  p.width = c.mamba.d_inner();
  p.group_size = c.mamba.norm_group_size();
  p.eps = c.norm_eps;
  p.y = y;
  p.z = proj;
  p.z_stride = c.mamba.in_proj_width();
  p.weight = w.norm;
  p.out = y;
  return p;
}

RmsNormParams Norm(const ModelConfig& c, int64_t rows, const float* x, const float* weight, float* out) {
  RmsNormParams p;
  p.rows = rows;
  p.width = c.hidden_size;
  p.eps = c.norm_eps;
  p.x = x;
  p.weight = weight;
  p.out = out;
  return p;
}

RopeParams Rope(const AttentionConfig& a, int64_t L, int64_t position0, int64_t heads, float* x) {
  RopeParams p;
  p.num_tokens = L;
  p.head_dim = a.head_dim;
  p.rotary_dim = a.rotary_dim;
  p.theta = a.rope_theta;
  p.position0 = position0;
  p.num_heads = heads;
  p.x = x;
  return p;
}

AttentionParams Attention(const AttentionConfig& a, int64_t L, int64_t q_position0, int64_t kv_len,
                          int64_t kv_position0, float* out, float* lse) {
  AttentionParams p;
  p.q_len = L;
  p.kv_len = kv_len;
  p.num_q_heads = a.num_heads;
  p.num_kv_heads = a.num_kv_heads;
  p.head_dim = a.head_dim;
  p.q_position0 = q_position0;
  p.kv_position0 = kv_position0;
  p.causal = true;
  p.scale = 1.0f / std::sqrt(static_cast<float>(a.head_dim));
  p.out = out;
  p.lse = lse;
  return p;
}

AttentionMergeParams Merge(const AttentionConfig& a, int64_t L, float* out, float* lse, const float* part_out,
                           const float* part_lse) {
  AttentionMergeParams p;
  p.rows = L * a.num_heads;
  p.head_dim = a.head_dim;
  p.out = out;
  p.lse = lse;
  p.part_out = part_out;
  p.part_lse = part_lse;
  return p;
}

}  // namespace tessera::block_params
