// One function per block kind, each reading normed activations and adding its
// output into the residual stream. Shapes are annotated where buffers are made.
#include "worker/cpu_forward.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
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
#include "worker/block_params.h"

namespace tessera {
namespace {

const float* OrNull(const HostTensor& t) { return t.numel() > 0 ? t.data : nullptr; }

// y (rows, out) = x (rows, in) · Wᵀ + b, or y += ... when accumulate.
absl::Status Project(int64_t rows, const float* x, int64_t x_stride, const HostTensor& weight,
                     const HostTensor& bias, float* y, int64_t y_stride, bool accumulate) {
  LinearParams p;
  p.rows = rows;
  p.out_features = weight.shape[0];
  p.in_features = weight.shape[1];
  p.x = x;
  p.x_stride = x_stride;
  p.weight = weight.data;
  p.bias = OrNull(bias);
  p.y = y;
  p.y_stride = y_stride;
  p.accumulate = accumulate;
  return cpu::Linear(p);
}

// The K-1 pre-conv rows preceding this shard: the tails of the shards to its
// left, gathered from every rank (a shard may be shorter than K-1 rows, so the
// window can span several of them). Fresh sequence: zeros before token 0.
absl::StatusOr<std::vector<float>> GatherConvHalo(const MambaConfig& m, const ShardContext& ctx, int64_t block,
                                                  const float* xbc, int64_t stride, int64_t L) {
  const int64_t channels = m.conv_channels();
  const int64_t window = m.conv_kernel - 1;
  const int64_t tail_rows = std::min(window, L);
  std::vector<float> tail(tail_rows * channels);  // (tail_rows, C): my last pre-conv rows
  for (int64_t r = 0; r < tail_rows; ++r) {
    const float* row = xbc + (L - tail_rows + r) * stride;
    std::copy(row, row + channels, tail.begin() + r * channels);
  }
  ASSIGN_OR_RETURN(std::vector<std::vector<float>> tails,
                   ctx.peers->AllGather(ExchangeTag(block, ExchangeKind::kConvTail), tail));
  std::vector<float> rows(window * channels, 0.0f);  // (K-1, C): zeros, then earlier shards' tails
  for (int rank = 0; rank < ctx.peers->rank(); ++rank) rows.insert(rows.end(), tails[rank].begin(), tails[rank].end());
  return std::vector<float>(rows.end() - window * channels, rows.end());
}

// h_in of this shard from every shard's (log Λ, S): h_in(r) = Λ_{r-1} h_in(r-1) + S_{r-1}.
absl::StatusOr<std::vector<float>> ComposeInitialState(const MambaConfig& m, const ShardContext& ctx,
                                                       int64_t block, absl::Span<const float> log_decay,
                                                       absl::Span<const float> final_state) {
  const int64_t heads = m.num_heads;
  const int64_t per_head = m.head_dim * m.state_size;
  std::vector<float> summary(log_decay.begin(), log_decay.end());  // (H + H·P·N): [log Λ | S]
  summary.insert(summary.end(), final_state.begin(), final_state.end());
  ASSIGN_OR_RETURN(std::vector<std::vector<float>> all,
                   ctx.peers->AllGather(ExchangeTag(block, ExchangeKind::kSsdSummary), summary));
  std::vector<float> h_in(heads * per_head, 0.0f);  // (H, P, N)
  for (int rank = 0; rank < ctx.peers->rank(); ++rank) {
    if (static_cast<int64_t>(all[rank].size()) != heads + heads * per_head) {
      return absl::InternalError(absl::StrCat("SSD summary from shard ", rank, " has ", all[rank].size(), " floats"));
    }
    for (int64_t h = 0; h < heads; ++h) {
      const float decay = std::exp(all[rank][h]);
      const float* s = all[rank].data() + heads + h * per_head;
      float* dst = h_in.data() + h * per_head;
      for (int64_t i = 0; i < per_head; ++i) dst[i] = decay * dst[i] + s[i];
    }
  }
  return h_in;
}

block_params::MambaTensors TensorsOf(const MambaWeights& w) {
  return {w.conv_weight.data, OrNull(w.conv_bias), w.dt_bias.data, w.A.data(), w.D.data, w.norm.data};
}

absl::Status MambaBlock(const ModelConfig& c, const MambaWeights& w, MambaLayerState& state, int64_t block,
                        const ShardContext& ctx, int64_t L, const float* normed, float* residual) {
  const MambaConfig& m = c.mamba;
  const block_params::MambaTensors t = TensorsOf(w);
  const bool sharded = ctx.sharded();

  std::vector<float> proj(L * m.in_proj_width());  // (L, [z | xBC | dt])
  RETURN_IF_ERROR(Project(L, normed, 0, w.in_proj, w.in_proj_bias, proj.data(), 0, false));

  std::vector<float> halo;  // (K-1, C) when sharded
  if (sharded) {
    ASSIGN_OR_RETURN(halo, GatherConvHalo(m, ctx, block, proj.data() + m.d_inner(), m.in_proj_width(), L));
  }
  std::vector<float> conv(L * m.conv_channels());  // (L, C) = [x | B | C] after conv + SiLU
  RETURN_IF_ERROR(cpu::CausalConv1d(block_params::Conv(m, t, L, proj.data(), sharded ? halo.data() : state.conv.data(),
                                                       conv.data(), state.conv.data())));
  std::vector<float> dt(L * m.num_heads);  // (L, H)
  RETURN_IF_ERROR(cpu::DtSoftplus(block_params::Dt(m, t, L, proj.data(), dt.data())));

  std::vector<float> y(L * m.d_inner());  // (L, H, P)
  if (L == 1 && !sharded) {  // decode: the one-token update
    RETURN_IF_ERROR(cpu::SsdStep(block_params::Step(m, t, conv.data(), dt.data(), state.ssm.data(), y.data())));
  } else {
    std::vector<float> log_decay(m.num_heads);  // (H)
    RETURN_IF_ERROR(cpu::SsdScan(block_params::Scan(m, t, L, conv.data(), dt.data(),
                                                    sharded ? nullptr : state.ssm.data(), y.data(), state.ssm.data(),
                                                    log_decay.data())));
    if (sharded) {
      // This shard ran from a zero state; add its true initial state's share.
      ASSIGN_OR_RETURN(std::vector<float> h_in, ComposeInitialState(m, ctx, block, log_decay, state.ssm));
      if (ctx.peers->rank() > 0) {
        RETURN_IF_ERROR(cpu::SsdAddInitialState(block_params::AddInitialState(
            m, t, L, conv.data(), dt.data(), h_in.data(), y.data(), state.ssm.data())));
      }
    }
  }
  RETURN_IF_ERROR(cpu::GatedRmsNorm(block_params::GatedNorm(c, t, L, proj.data(), y.data())));
  return Project(L, y.data(), 0, w.out_proj, w.out_proj_bias, residual, 0, /*accumulate=*/true);
}

absl::Status MergeInto(const AttentionConfig& a, int64_t L, AttentionPartial& acc, const AttentionPartial& part) {
  return cpu::AttentionMerge(
      block_params::Merge(a, L, acc.out.data(), acc.lse.data(), part.out.data(), part.lse.data()));
}

// Attention of q (L rows from q_position0) over one K/V block that starts at kv_position0.
absl::StatusOr<AttentionPartial> AttendBlock(const AttentionConfig& a, int64_t L, const float* q,
                                             int64_t q_position0, int64_t kv_len, const float* k, const float* v,
                                             int64_t kv_position0) {
  AttentionPartial part;
  part.out.resize(L * a.num_heads * a.head_dim);  // (L, Hq, D)
  part.lse.resize(L * a.num_heads);              // (L, Hq)
  AttentionParams ap = block_params::Attention(a, L, q_position0, kv_len, kv_position0, part.out.data(),
                                                part.lse.data());
  ap.q = q;
  ap.k = k;
  ap.v = v;
  RETURN_IF_ERROR(cpu::Attention(ap));
  return part;
}

// Ring attention: this shard's new K/V travels around the ring while every
// shard attends its queries to each block it receives from an earlier shard.
absl::Status AttendRing(const AttentionConfig& a, const ShardContext& ctx, int64_t block, int64_t L, const float* q,
                        int64_t position0, const float* k_new, const float* v_new, AttentionPartial& acc) {
  const int64_t kv_width = a.num_kv_heads * a.head_dim;
  const int size = ctx.peers->size();
  std::vector<float> kv_block(k_new, k_new + L * kv_width);  // (L, Hkv, D) K then (L, Hkv, D) V
  kv_block.insert(kv_block.end(), v_new, v_new + L * kv_width);
  for (int step = 1; step < size; ++step) {
    ASSIGN_OR_RETURN(kv_block, ctx.peers->RingShift(ExchangeTag(block, ExchangeKind::kRingKv, step), kv_block));
    const int source = (ctx.peers->rank() - step + size) % size;
    const int64_t begin = ctx.shard_bounds[source];
    const int64_t len = ctx.shard_bounds[source + 1] - begin;
    if (static_cast<int64_t>(kv_block.size()) != 2 * len * kv_width) {
      return absl::InternalError(absl::StrCat("K/V block from shard ", source, " has ", kv_block.size(), " floats"));
    }
    if (begin >= position0) continue;  // a later shard: causally invisible
    ASSIGN_OR_RETURN(AttentionPartial part,
                     AttendBlock(a, L, q, position0, len, kv_block.data(), kv_block.data() + len * kv_width, begin));
    RETURN_IF_ERROR(MergeInto(a, L, acc, part));
  }
  return absl::OkStatus();
}

absl::Status AttentionBlock(const ModelConfig& c, const AttentionWeights& w, AttentionLayerKv& kv, int64_t slot,
                            int64_t block, const ShardContext& ctx, int64_t position0, int64_t kv_begin, int64_t L,
                            const float* normed, float* residual) {
  const AttentionConfig& a = c.attention;
  const int64_t q_width = a.num_heads * a.head_dim;
  const int64_t kv_width = a.num_kv_heads * a.head_dim;

  std::vector<float> q(L * q_width);  // (L, Hq, D)
  RETURN_IF_ERROR(Project(L, normed, 0, w.q_proj, w.q_bias, q.data(), 0, false));
  const int64_t cached = static_cast<int64_t>(kv.k.size()) / kv_width;
  kv.k.resize((cached + L) * kv_width);  // (cached + L, Hkv, D)
  kv.v.resize((cached + L) * kv_width);
  float* k_new = kv.k.data() + cached * kv_width;
  float* v_new = kv.v.data() + cached * kv_width;
  RETURN_IF_ERROR(Project(L, normed, 0, w.k_proj, w.k_bias, k_new, 0, false));
  RETURN_IF_ERROR(Project(L, normed, 0, w.v_proj, w.v_bias, v_new, 0, false));

  if (a.rotary_dim > 0) {
    RETURN_IF_ERROR(cpu::Rope(block_params::Rope(a, L, position0, a.num_heads, q.data())));
    RETURN_IF_ERROR(cpu::Rope(block_params::Rope(a, L, position0, a.num_kv_heads, k_new)));
  }

  ASSIGN_OR_RETURN(AttentionPartial acc,
                   AttendBlock(a, L, q.data(), position0, cached + L, kv.k.data(), kv.v.data(), kv_begin));
  if (ctx.sharded()) RETURN_IF_ERROR(AttendRing(a, ctx, block, L, q.data(), position0, k_new, v_new, acc));
  if (ctx.remote_kv != nullptr) {
    ASSIGN_OR_RETURN(std::vector<AttentionPartial> parts, ctx.remote_kv->Attend(slot, q, L, position0));
    for (const AttentionPartial& part : parts) RETURN_IF_ERROR(MergeInto(a, L, acc, part));
  }
  const std::vector<float>& out = acc.out;  // (L, Hq, D)

  return Project(L, out.data(), 0, w.o_proj, w.o_bias, residual, 0, /*accumulate=*/true);
}

absl::Status MlpBlock(const ModelConfig& c, const MlpWeights& w, int64_t L, const float* normed,
                      float* residual) {
  const int64_t inner = c.mlp.intermediate_size;
  std::vector<float> up(L * inner);  // (L, I)
  RETURN_IF_ERROR(Project(L, normed, 0, w.up_proj, w.up_bias, up.data(), 0, false));
  switch (c.mlp.activation) {
    case MlpActivation::kSwiGlu: {
      std::vector<float> gate(L * inner);  // (L, I)
      RETURN_IF_ERROR(Project(L, normed, 0, w.gate_proj, w.gate_bias, gate.data(), 0, false));
      SiluMulParams sp;
      sp.rows = L;
      sp.width = inner;
      sp.gate = gate.data();
      sp.up = up.data();
      sp.out = up.data();
      RETURN_IF_ERROR(cpu::SiluMul(sp));
      break;
    }
    case MlpActivation::kRelu2: {
      ReluSquaredParams rp;
      rp.count = L * inner;
      rp.x = up.data();
      rp.out = up.data();
      RETURN_IF_ERROR(cpu::ReluSquared(rp));
      break;
    }
  }
  return Project(L, up.data(), 0, w.down_proj, w.down_bias, residual, 0, /*accumulate=*/true);
}

absl::Status RunBlock(const ModelConfig& c, const BlockWeights& block, int64_t block_index, SequenceState& state,
                      const ShardContext& ctx, int64_t L, const float* normed, float* residual) {
  switch (block.spec.kind) {
    case BlockKind::kMamba:
      return MambaBlock(c, std::get<MambaWeights>(block.op), state.mamba[block.state_slot], block_index, ctx, L,
                        normed, residual);
    case BlockKind::kAttention:
      return AttentionBlock(c, std::get<AttentionWeights>(block.op), state.attention[block.state_slot],
                            block.state_slot, block_index, ctx, state.num_tokens, state.kv_begin, L, normed,
                            residual);
    case BlockKind::kMlp:
      return MlpBlock(c, std::get<MlpWeights>(block.op), L, normed, residual);
  }
  return absl::InternalError("unknown block kind");
}

absl::Status Normalize(const ModelConfig& c, const HostTensor& weight, int64_t rows, const float* x, float* out) {
  return cpu::RmsNorm(block_params::Norm(c, rows, x, weight.data, out));
}

}  // namespace

absl::StatusOr<std::vector<float>> ForwardCpu(const ModelWeights& weights, SequenceState& state,
                                              absl::Span<const int32_t> ids, LogitsRows rows,
                                              const ShardContext& shard) {
  const ModelConfig& c = weights.config;
  const int64_t L = static_cast<int64_t>(ids.size());
  const int64_t d = c.hidden_size;
  if (L == 0) return absl::InvalidArgumentError("forward pass needs at least one token");

  std::vector<float> hidden(L * d);  // (L, hidden): the residual stream
  EmbeddingParams ep;
  ep.num_tokens = L;
  ep.vocab_size = c.vocab_size;
  ep.hidden = d;
  ep.ids = ids.data();
  ep.table = weights.embedding.data;
  ep.out = hidden.data();
  RETURN_IF_ERROR(cpu::Embedding(ep));

  std::vector<float> normed(L * d);  // (L, hidden)
  if (shard.sharded() && static_cast<int64_t>(shard.shard_bounds.size()) != shard.peers->size() + 1) {
    return absl::InternalError("shard_bounds must have one entry per shard plus one");
  }
  for (size_t i = 0; i < weights.blocks.size(); ++i) {
    const BlockWeights& block = weights.blocks[i];
    RETURN_IF_ERROR(Normalize(c, block.norm, L, hidden.data(), normed.data()));
    RETURN_IF_ERROR(RunBlock(c, block, static_cast<int64_t>(i), state, shard, L, normed.data(), hidden.data()));
    if (shard.on_block_done) {
      RETURN_IF_ERROR(shard.on_block_done(static_cast<int64_t>(i) + 1, static_cast<int64_t>(weights.blocks.size())));
    }
  }
  state.num_tokens += L;

  if (rows == LogitsRows::kNone) return std::vector<float>{};
  const int64_t out_rows = rows == LogitsRows::kAll ? L : 1;
  const float* last = hidden.data() + (L - out_rows) * d;
  RETURN_IF_ERROR(Normalize(c, weights.final_norm, out_rows, last, normed.data()));
  std::vector<float> logits(out_rows * c.vocab_size);  // (rows, vocab)
  RETURN_IF_ERROR(Project(out_rows, normed.data(), 0, weights.lm_head, HostTensor{}, logits.data(), 0, false));
  return logits;
}

}  // namespace tessera

namespace tessera {

absl::StatusOr<AttentionPartial> AttendStoredKv(const ModelConfig& config, const SequenceState& state,
                                                int64_t attention_slot, absl::Span<const float> q, int64_t q_len,
                                                int64_t q_position0) {
  const AttentionConfig& a = config.attention;
  if (attention_slot < 0 || attention_slot >= static_cast<int64_t>(state.attention.size())) {
    return absl::InvalidArgumentError(absl::StrCat("no attention layer ", attention_slot));
  }
  if (q_len <= 0 || static_cast<int64_t>(q.size()) != q_len * a.num_heads * a.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat("query has ", q.size(), " floats, expected ", q_len, " x ",
                                                   a.num_heads * a.head_dim));
  }
  const AttentionLayerKv& kv = state.attention[attention_slot];
  const int64_t kv_len = static_cast<int64_t>(kv.k.size()) / (a.num_kv_heads * a.head_dim);
  return AttendBlock(a, q_len, q.data(), q_position0, kv_len, kv.k.data(), kv.v.data(), state.kv_begin);
}

}  // namespace tessera
