// One ForwardPass object per call: it owns the call's scratch (stream-ordered
// allocations freed as each block's buffers go out of scope) and mirrors the
// CPU reference block by block, so a divergence is easy to localize.
#include "worker/cuda/cuda_forward.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/cast.h"
#include "kernels/causal_conv1d.h"
#include "kernels/dt_softplus.h"
#include "kernels/embedding.h"
#include "kernels/gated_rms_norm.h"
#include "kernels/linear.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/ssd_compose.h"
#include "kernels/ssd_scan.h"
#include "kernels/ssd_step.h"
#include "worker/block_params.h"
#include "worker/cuda/staged_device_exchange.h"

namespace tessera::cuda_engine {
namespace {

// A GEMM input: the fp32 activation itself, or its copy in bf16.
struct Operand {
  const void* data = nullptr;
  int64_t stride = 0;
  StreamBuffer storage;  // the bf16 copy, when one was made
};

absl::Status Sync(cudaStream_t stream) { return CudaStatus("forward pass", cudaStreamSynchronize(stream)); }

class ForwardPass {
 public:
  ForwardPass(const DeviceWeights& w, CudaShardState& state, const ShardContext& ctx, cudaStream_t stream)
      : w_(w), c_(w.config), state_(state), ctx_(ctx), stream_(stream) {}

  absl::StatusOr<std::vector<float>> Run(absl::Span<const int32_t> ids, LogitsRows rows);

 private:
  absl::StatusOr<StreamBuffer> Floats(int64_t count) {
    return StreamBuffer::Allocate(static_cast<size_t>(count) * sizeof(float), stream_);
  }
  absl::StatusOr<StreamBuffer> Bytes(int64_t count) { return StreamBuffer::Allocate(count, stream_); }
  absl::Status Check(absl::string_view what, cudaError_t e) { return CudaStatus(what, e); }

  absl::StatusOr<Operand> MakeOperand(const float* x, int64_t rows, int64_t width, int64_t stride);
  absl::Status Project(int64_t rows, const Operand& x, const DeviceMatrix& weight, const DeviceVector& bias,
                       float* y, int64_t y_stride, bool accumulate);
  absl::Status Normalize(const DeviceVector& weight, int64_t rows, const float* x, float* out);

  absl::Status Mamba(const DeviceMamba& mw, DeviceMambaState& st, int64_t block, const Operand& normed,
                     float* residual);
  absl::StatusOr<StreamBuffer> GatherConvHalo(int64_t block, const float* xbc, int64_t stride);
  absl::Status AddInitialStateFromPeers(const block_params::MambaTensors& t, DeviceMambaState& st, int64_t block,
                                        const float* log_decay, const float* dt, const float* conv_out, float* y);

  absl::Status Attention(const DeviceAttention& aw, DeviceKv& kv, int64_t slot, int64_t block,
                         const Operand& normed, float* residual);
  absl::Status AttendRing(int64_t block, const void* q, int64_t cached, const DeviceKv& kv, float* out, float* lse);
  absl::Status AttendRemote(int64_t slot, const float* q, float* out, float* lse);
  absl::Status Attend(const void* q, int64_t kv_len, const void* k, const void* v, int64_t kv_position0,
                      float* out, float* lse);
  absl::Status Merge(float* out, float* lse, const float* part_out, const float* part_lse);

  absl::Status Mlp(const DeviceMlp& mw, const Operand& normed, float* residual);

  const DeviceWeights& w_;
  const ModelConfig& c_;
  CudaShardState& state_;
  const ShardContext& ctx_;
  cudaStream_t stream_;
  int64_t L_ = 0;
  DeviceExchange* exchange_ = nullptr;
  std::unique_ptr<StagedDeviceExchange> staged_;
};

absl::StatusOr<Operand> ForwardPass::MakeOperand(const float* x, int64_t rows, int64_t width, int64_t stride) {
  Operand op;
  if (w_.type == ElementType::kF32) {
    op.data = x;
    op.stride = stride == 0 ? width : stride;
    return op;
  }
  ASSIGN_OR_RETURN(op.storage, Bytes(rows * width * ElementBytes(w_.type)));  // (rows, width) bf16
  RETURN_IF_ERROR(cuda::Cast(CastParams{rows, width, ElementType::kF32, x, stride, w_.type, op.storage.get(), width},
                             stream_));
  op.data = op.storage.get();
  op.stride = width;
  return op;
}

absl::Status ForwardPass::Project(int64_t rows, const Operand& x, const DeviceMatrix& weight,
                                  const DeviceVector& bias, float* y, int64_t y_stride, bool accumulate) {
  LinearParams p;
  p.rows = rows;
  p.in_features = weight.cols;
  p.out_features = weight.rows;
  p.type = weight.type;
  p.x = x.data;
  p.x_stride = x.stride;
  p.weight = weight.data();
  p.bias = bias.data();
  p.y = y;
  p.y_stride = y_stride;
  p.accumulate = accumulate;
  return cuda::Linear(p, stream_);
}

absl::Status ForwardPass::Normalize(const DeviceVector& weight, int64_t rows, const float* x, float* out) {
  return cuda::RmsNorm(block_params::Norm(c_, rows, x, weight.data(), out), stream_);
}

// The K-1 pre-conv rows before this shard, from the tails every rank sends:
// each rank sends (K-1, C) rows, its last min(K-1, L_r) rows at the bottom
// (zeros above); the halo is the last K-1 valid rows of ranks 0..rank-1, in
// order, zeros before token 0.
absl::StatusOr<StreamBuffer> ForwardPass::GatherConvHalo(int64_t block, const float* xbc, int64_t stride) {
  const MambaConfig& m = c_.mamba;
  const int64_t channels = m.conv_channels();
  const int64_t window = m.conv_kernel - 1;
  const int64_t row_bytes = channels * static_cast<int64_t>(sizeof(float));
  const int size = ctx_.peers->size();
  const int rank = ctx_.peers->rank();
  ASSIGN_OR_RETURN(StreamBuffer halo, Floats(window * channels));  // (K-1, C)
  if (window == 0) return halo;
  ASSIGN_OR_RETURN(StreamBuffer tail, Floats(window * channels));  // (K-1, C): my last rows, bottom-aligned
  const int64_t tail_rows = std::min(window, L_);
  RETURN_IF_ERROR(Check("conv halo", cudaMemsetAsync(tail.get(), 0, tail.bytes(), stream_)));
  RETURN_IF_ERROR(Check("conv halo", cudaMemcpy2DAsync(tail.as<float>() + (window - tail_rows) * channels, row_bytes,
                                                       xbc + (L_ - tail_rows) * stride, stride * sizeof(float),
                                                       row_bytes, tail_rows, cudaMemcpyDeviceToDevice, stream_)));
  ASSIGN_OR_RETURN(StreamBuffer all, Floats(size * window * channels));  // (ranks, K-1, C)
  RETURN_IF_ERROR(exchange_->AllGather(ExchangeTag(block, ExchangeKind::kConvTail), tail.get(),
                                       tail.bytes(), all.get(), stream_));
  RETURN_IF_ERROR(Check("conv halo", cudaMemsetAsync(halo.get(), 0, halo.bytes(), stream_)));
  // Walk back from the nearest earlier shard, filling the halo bottom-up.
  int64_t filled = 0;
  for (int r = rank - 1; r >= 0 && filled < window; --r) {
    const int64_t len = ctx_.shard_bounds[r + 1] - ctx_.shard_bounds[r];
    const int64_t take = std::min({window, len, window - filled});
    const float* src = all.as<float>() + (static_cast<int64_t>(r) * window + window - take) * channels;
    float* dst = halo.as<float>() + (window - filled - take) * channels;
    RETURN_IF_ERROR(Check("conv halo", cudaMemcpyAsync(dst, src, take * row_bytes, cudaMemcpyDeviceToDevice, stream_)));
    filled += take;
  }
  return halo;
}

// This shard ran from a zero state; all-gather (log Λ, S), compose h_in and
// add its contribution to y and the final state (DESIGN.md).
absl::Status ForwardPass::AddInitialStateFromPeers(const block_params::MambaTensors& t, DeviceMambaState& st,
                                                   int64_t block, const float* log_decay, const float* dt,
                                                   const float* conv_out, float* y) {
  const MambaConfig& m = c_.mamba;
  const int64_t heads = m.num_heads;
  const int64_t per_head = m.head_dim * m.state_size;
  const int64_t summary_floats = heads + heads * per_head;
  const int size = ctx_.peers->size();
  const int rank = ctx_.peers->rank();
  ASSIGN_OR_RETURN(StreamBuffer summary, Floats(summary_floats));  // (H + H·P·N): [log Λ | S]
  RETURN_IF_ERROR(Check("SSD summary", cudaMemcpyAsync(summary.get(), log_decay, heads * sizeof(float),
                                                       cudaMemcpyDeviceToDevice, stream_)));
  RETURN_IF_ERROR(Check("SSD summary", cudaMemcpyAsync(summary.as<float>() + heads, st.ssm.get(),
                                                       heads * per_head * sizeof(float), cudaMemcpyDeviceToDevice,
                                                       stream_)));
  ASSIGN_OR_RETURN(StreamBuffer all, Floats(size * summary_floats));  // (ranks, H + H·P·N)
  RETURN_IF_ERROR(exchange_->AllGather(ExchangeTag(block, ExchangeKind::kSsdSummary), summary.get(),
                                       summary.bytes(), all.get(), stream_));
  if (rank == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(StreamBuffer h_in, Floats(heads * per_head));  // (H, P, N)
  SsdComposeParams compose;
  compose.ranks_before = rank;
  compose.num_heads = heads;
  compose.per_head = per_head;
  compose.summaries = all.as<float>();
  compose.h_in = h_in.as<float>();
  RETURN_IF_ERROR(cuda::SsdComposeInitialState(compose, stream_));
  return cuda::SsdAddInitialState(
      block_params::AddInitialState(m, t, L_, conv_out, dt, h_in.as<float>(), y, st.ssm.as<float>()), stream_);
}

absl::Status ForwardPass::Mamba(const DeviceMamba& mw, DeviceMambaState& st, int64_t block, const Operand& normed,
                                float* residual) {
  const MambaConfig& m = c_.mamba;
  const block_params::MambaTensors t{mw.conv_weight.data(), mw.conv_bias.data(), mw.dt_bias.data(),
                                     mw.A.data(),           mw.D.data(),         mw.norm.data()};
  const bool sharded = ctx_.sharded();

  ASSIGN_OR_RETURN(StreamBuffer proj, Floats(L_ * m.in_proj_width()));  // (L, [z | xBC | dt])
  RETURN_IF_ERROR(Project(L_, normed, mw.in_proj, mw.in_proj_bias, proj.as<float>(), 0, false));

  StreamBuffer halo;  // (K-1, C) when sharded
  if (sharded) {
    ASSIGN_OR_RETURN(halo, GatherConvHalo(block, proj.as<float>() + m.d_inner(), m.in_proj_width()));
  }
  ASSIGN_OR_RETURN(StreamBuffer conv, Floats(L_ * m.conv_channels()));  // (L, C) = [x | B | C] after conv + SiLU
  RETURN_IF_ERROR(cuda::CausalConv1d(block_params::Conv(m, t, L_, proj.as<float>(),
                                                        sharded ? halo.as<float>() : st.conv.as<float>(),
                                                        conv.as<float>(), st.conv.as<float>()),
                                     stream_));
  ASSIGN_OR_RETURN(StreamBuffer dt, Floats(L_ * m.num_heads));  // (L, H)
  RETURN_IF_ERROR(cuda::DtSoftplus(block_params::Dt(m, t, L_, proj.as<float>(), dt.as<float>()), stream_));

  ASSIGN_OR_RETURN(StreamBuffer y, Floats(L_ * m.d_inner()));  // (L, H, P)
  if (L_ == 1 && !sharded) {  // decode: the one-token update
    RETURN_IF_ERROR(cuda::SsdStep(
        block_params::Step(m, t, conv.as<float>(), dt.as<float>(), st.ssm.as<float>(), y.as<float>()), stream_));
  } else {
    ASSIGN_OR_RETURN(StreamBuffer log_decay, Floats(m.num_heads));  // (H)
    RETURN_IF_ERROR(cuda::SsdScan(block_params::Scan(m, t, L_, conv.as<float>(), dt.as<float>(),
                                                     sharded ? nullptr : st.ssm.as<float>(), y.as<float>(),
                                                     st.ssm.as<float>(), log_decay.as<float>()),
                                  stream_));
    if (sharded) {
      RETURN_IF_ERROR(AddInitialStateFromPeers(t, st, block, log_decay.as<float>(), dt.as<float>(),
                                               conv.as<float>(), y.as<float>()));
    }
  }
  RETURN_IF_ERROR(cuda::GatedRmsNorm(block_params::GatedNorm(c_, t, L_, proj.as<float>(), y.as<float>()), stream_));

  ASSIGN_OR_RETURN(Operand y_op, MakeOperand(y.as<float>(), L_, m.d_inner(), 0));
  return Project(L_, y_op, mw.out_proj, mw.out_proj_bias, residual, 0, /*accumulate=*/true);
}

absl::Status ForwardPass::Attend(const void* q, int64_t kv_len, const void* k, const void* v, int64_t kv_position0,
                                 float* out, float* lse) {
  AttentionParams ap =
      block_params::Attention(c_.attention, L_, state_.num_tokens_, kv_len, kv_position0, out, lse);
  ap.type = w_.type;
  ap.q = q;
  ap.k = k;
  ap.v = v;
  return cuda::Attention(ap, stream_);
}

absl::Status ForwardPass::Merge(float* out, float* lse, const float* part_out, const float* part_lse) {
  return cuda::AttentionMerge(block_params::Merge(c_.attention, L_, out, lse, part_out, part_lse), stream_);
}

// Ring attention: this shard's new K/V travels around the ring while every
// shard attends its queries to each block it receives from an earlier shard.
// Blocks travel in the K/V element type.
absl::Status ForwardPass::AttendRing(int64_t block, const void* q, int64_t cached, const DeviceKv& kv, float* out,
                                     float* lse) {
  const AttentionConfig& a = c_.attention;
  const int64_t row_bytes = state_.kv_row_bytes_;
  const int size = ctx_.peers->size();
  const int rank = ctx_.peers->rank();
  int64_t max_len = 0;
  for (int r = 0; r < size; ++r) max_len = std::max(max_len, ctx_.shard_bounds[r + 1] - ctx_.shard_bounds[r]);
  ASSIGN_OR_RETURN(StreamBuffer send, Bytes(2 * max_len * row_bytes));  // (len, Hkv, D) K then (len, Hkv, D) V
  ASSIGN_OR_RETURN(StreamBuffer recv, Bytes(2 * max_len * row_bytes));
  const uint8_t* k_new = kv.k.as<uint8_t>() + cached * row_bytes;
  const uint8_t* v_new = kv.v.as<uint8_t>() + cached * row_bytes;
  RETURN_IF_ERROR(Check("ring K/V", cudaMemcpyAsync(send.get(), k_new, L_ * row_bytes, cudaMemcpyDeviceToDevice,
                                                    stream_)));
  RETURN_IF_ERROR(Check("ring K/V", cudaMemcpyAsync(send.as<uint8_t>() + L_ * row_bytes, v_new, L_ * row_bytes,
                                                    cudaMemcpyDeviceToDevice, stream_)));
  ASSIGN_OR_RETURN(StreamBuffer part_out, Floats(L_ * a.num_heads * a.head_dim));  // (L, Hq, D)
  ASSIGN_OR_RETURN(StreamBuffer part_lse, Floats(L_ * a.num_heads));               // (L, Hq)
  int64_t held_len = L_;  // rows of the block in `send`
  for (int step = 1; step < size; ++step) {
    const int source = (rank - step + size) % size;
    const int64_t begin = ctx_.shard_bounds[source];
    const int64_t len = ctx_.shard_bounds[source + 1] - begin;
    RETURN_IF_ERROR(exchange_->RingShift(ExchangeTag(block, ExchangeKind::kRingKv, step), send.get(),
                                         2 * held_len * row_bytes, recv.get(), 2 * len * row_bytes, stream_));
    std::swap(send, recv);
    held_len = len;
    if (begin >= state_.num_tokens_) continue;  // a later shard: causally invisible
    RETURN_IF_ERROR(Attend(q, len, send.get(), send.as<uint8_t>() + len * row_bytes, begin, part_out.as<float>(),
                           part_lse.as<float>()));
    RETURN_IF_ERROR(Merge(out, lse, part_out.as<float>(), part_lse.as<float>()));
  }
  return absl::OkStatus();
}

// Split-KV decode: the other shards' partials over their K/V, merged here.
absl::Status ForwardPass::AttendRemote(int64_t slot, const float* q, float* out, float* lse) {
  const AttentionConfig& a = c_.attention;
  const int64_t q_floats = L_ * a.num_heads * a.head_dim;
  std::vector<float> host_q(q_floats);  // (L, Hq, D), RoPE applied
  RETURN_IF_ERROR(Check("remote K/V", cudaMemcpyAsync(host_q.data(), q, q_floats * sizeof(float),
                                                      cudaMemcpyDeviceToHost, stream_)));
  RETURN_IF_ERROR(Sync(stream_));
  ASSIGN_OR_RETURN(std::vector<AttentionPartial> parts, ctx_.remote_kv->Attend(slot, host_q, L_, state_.num_tokens_));
  ASSIGN_OR_RETURN(StreamBuffer part_out, Floats(q_floats));         // (L, Hq, D)
  ASSIGN_OR_RETURN(StreamBuffer part_lse, Floats(L_ * a.num_heads));  // (L, Hq)
  for (const AttentionPartial& part : parts) {
    if (static_cast<int64_t>(part.out.size()) != q_floats || static_cast<int64_t>(part.lse.size()) != L_ * a.num_heads) {
      return absl::InternalError(absl::StrCat("remote attention partial has ", part.out.size(), " + ",
                                              part.lse.size(), " floats"));
    }
    RETURN_IF_ERROR(Check("remote K/V", cudaMemcpyAsync(part_out.get(), part.out.data(), q_floats * sizeof(float),
                                                        cudaMemcpyHostToDevice, stream_)));
    RETURN_IF_ERROR(Check("remote K/V", cudaMemcpyAsync(part_lse.get(), part.lse.data(), part.lse.size() * sizeof(float),
                                                        cudaMemcpyHostToDevice, stream_)));
    RETURN_IF_ERROR(Merge(out, lse, part_out.as<float>(), part_lse.as<float>()));
    RETURN_IF_ERROR(Sync(stream_));  // `part` may be reused by the next iteration's copy only after this
  }
  return absl::OkStatus();
}

absl::Status ForwardPass::Attention(const DeviceAttention& aw, DeviceKv& kv, int64_t slot, int64_t block,
                                    const Operand& normed, float* residual) {
  const AttentionConfig& a = c_.attention;
  const int64_t q_width = a.num_heads * a.head_dim;
  const int64_t kv_width = a.num_kv_heads * a.head_dim;
  const int64_t row_bytes = state_.kv_row_bytes_;

  ASSIGN_OR_RETURN(StreamBuffer q, Floats(L_ * q_width));       // (L, Hq, D)
  ASSIGN_OR_RETURN(StreamBuffer k_new, Floats(L_ * kv_width));  // (L, Hkv, D)
  ASSIGN_OR_RETURN(StreamBuffer v_new, Floats(L_ * kv_width));  // (L, Hkv, D)
  RETURN_IF_ERROR(Project(L_, normed, aw.q_proj, aw.q_bias, q.as<float>(), 0, false));
  RETURN_IF_ERROR(Project(L_, normed, aw.k_proj, aw.k_bias, k_new.as<float>(), 0, false));
  RETURN_IF_ERROR(Project(L_, normed, aw.v_proj, aw.v_bias, v_new.as<float>(), 0, false));
  if (a.rotary_dim > 0) {
    RETURN_IF_ERROR(cuda::Rope(block_params::Rope(a, L_, state_.num_tokens_, a.num_heads, q.as<float>()), stream_));
    RETURN_IF_ERROR(
        cuda::Rope(block_params::Rope(a, L_, state_.num_tokens_, a.num_kv_heads, k_new.as<float>()), stream_));
  }
  // Append to the cache in its element type.
  const int64_t cached = kv.tokens;
  RETURN_IF_ERROR(cuda::Cast(CastParams{L_, kv_width, ElementType::kF32, k_new.as<float>(), 0, w_.type,
                                        kv.k.as<uint8_t>() + cached * row_bytes, 0},
                             stream_));
  RETURN_IF_ERROR(cuda::Cast(CastParams{L_, kv_width, ElementType::kF32, v_new.as<float>(), 0, w_.type,
                                        kv.v.as<uint8_t>() + cached * row_bytes, 0},
                             stream_));
  kv.tokens += L_;

  ASSIGN_OR_RETURN(Operand q_op, MakeOperand(q.as<float>(), L_, q_width, 0));
  ASSIGN_OR_RETURN(StreamBuffer out, Floats(L_ * q_width));     // (L, Hq, D)
  ASSIGN_OR_RETURN(StreamBuffer lse, Floats(L_ * a.num_heads));  // (L, Hq)
  RETURN_IF_ERROR(Attend(q_op.data, kv.tokens, kv.k.get(), kv.v.get(), state_.kv_begin_, out.as<float>(),
                         lse.as<float>()));
  if (ctx_.sharded()) RETURN_IF_ERROR(AttendRing(block, q_op.data, cached, kv, out.as<float>(), lse.as<float>()));
  if (ctx_.remote_kv != nullptr) RETURN_IF_ERROR(AttendRemote(slot, q.as<float>(), out.as<float>(), lse.as<float>()));

  ASSIGN_OR_RETURN(Operand out_op, MakeOperand(out.as<float>(), L_, q_width, 0));
  return Project(L_, out_op, aw.o_proj, aw.o_bias, residual, 0, /*accumulate=*/true);
}

absl::Status ForwardPass::Mlp(const DeviceMlp& mw, const Operand& normed, float* residual) {
  const int64_t inner = c_.mlp.intermediate_size;
  ASSIGN_OR_RETURN(StreamBuffer up, Floats(L_ * inner));  // (L, I)
  RETURN_IF_ERROR(Project(L_, normed, mw.up_proj, mw.up_bias, up.as<float>(), 0, false));
  switch (c_.mlp.activation) {
    case MlpActivation::kSwiGlu: {
      ASSIGN_OR_RETURN(StreamBuffer gate, Floats(L_ * inner));  // (L, I)
      RETURN_IF_ERROR(Project(L_, normed, mw.gate_proj, mw.gate_bias, gate.as<float>(), 0, false));
      SiluMulParams sp;
      sp.rows = L_;
      sp.width = inner;
      sp.gate = gate.as<float>();
      sp.up = up.as<float>();
      sp.out = up.as<float>();
      RETURN_IF_ERROR(cuda::SiluMul(sp, stream_));
      break;
    }
    case MlpActivation::kRelu2: {
      ReluSquaredParams rp;
      rp.count = L_ * inner;
      rp.x = up.as<float>();
      rp.out = up.as<float>();
      RETURN_IF_ERROR(cuda::ReluSquared(rp, stream_));
      break;
    }
  }
  ASSIGN_OR_RETURN(Operand up_op, MakeOperand(up.as<float>(), L_, inner, 0));
  return Project(L_, up_op, mw.down_proj, mw.down_bias, residual, 0, /*accumulate=*/true);
}

absl::StatusOr<std::vector<float>> ForwardPass::Run(absl::Span<const int32_t> ids, LogitsRows rows) {
  L_ = static_cast<int64_t>(ids.size());
  const int64_t d = c_.hidden_size;
  if (L_ == 0) return absl::InvalidArgumentError("forward pass needs at least one token");
  if (ctx_.sharded()) {
    if (static_cast<int64_t>(ctx_.shard_bounds.size()) != ctx_.peers->size() + 1) {
      return absl::InternalError("shard_bounds must have one entry per shard plus one");
    }
    exchange_ = ctx_.peers->device_exchange();
    if (exchange_ == nullptr) {
      staged_ = std::make_unique<StagedDeviceExchange>(*ctx_.peers);
      exchange_ = staged_.get();
    }
  }
  if (state_.mamba.size() != static_cast<size_t>(c_.CountBlocks(BlockKind::kMamba))) {
    return absl::FailedPreconditionError("this shard's Mamba states were dropped; it can only answer AttendKv");
  }
  RETURN_IF_ERROR(state_.ReserveKv(L_, stream_));

  ASSIGN_OR_RETURN(StreamBuffer device_ids, Bytes(L_ * static_cast<int64_t>(sizeof(int32_t))));  // (L)
  RETURN_IF_ERROR(Check("token ids", cudaMemcpyAsync(device_ids.get(), ids.data(), L_ * sizeof(int32_t),
                                                     cudaMemcpyHostToDevice, stream_)));
  ASSIGN_OR_RETURN(StreamBuffer hidden, Floats(L_ * d));  // (L, hidden): the residual stream
  EmbeddingParams ep;
  ep.num_tokens = L_;
  ep.vocab_size = c_.vocab_size;
  ep.hidden = d;
  ep.ids = device_ids.as<int32_t>();
  ep.table_type = w_.embedding.type;
  ep.table = w_.embedding.data();
  ep.out = hidden.as<float>();
  RETURN_IF_ERROR(cuda::Embedding(ep, stream_));

  ASSIGN_OR_RETURN(StreamBuffer normed, Floats(L_ * d));  // (L, hidden)
  const int64_t total = static_cast<int64_t>(w_.blocks.size());
  for (int64_t i = 0; i < total; ++i) {
    const DeviceBlock& block = w_.blocks[i];
    RETURN_IF_ERROR(Normalize(block.norm, L_, hidden.as<float>(), normed.as<float>()));
    ASSIGN_OR_RETURN(Operand normed_op, MakeOperand(normed.as<float>(), L_, d, 0));
    switch (block.spec.kind) {
      case BlockKind::kMamba:
        RETURN_IF_ERROR(Mamba(std::get<DeviceMamba>(block.op), state_.mamba[block.state_slot], i, normed_op,
                              hidden.as<float>()));
        break;
      case BlockKind::kAttention:
        RETURN_IF_ERROR(Attention(std::get<DeviceAttention>(block.op), state_.attention[block.state_slot],
                                  block.state_slot, i, normed_op, hidden.as<float>()));
        break;
      case BlockKind::kMlp:
        RETURN_IF_ERROR(Mlp(std::get<DeviceMlp>(block.op), normed_op, hidden.as<float>()));
        break;
    }
    if (ctx_.on_block_done) {
      RETURN_IF_ERROR(Sync(stream_));  // progress means work done, not work enqueued
      RETURN_IF_ERROR(ctx_.on_block_done(i + 1, total));
    }
  }
  state_.num_tokens_ += L_;

  std::vector<float> logits;
  if (rows != LogitsRows::kNone) {
    const int64_t out_rows = rows == LogitsRows::kAll ? L_ : 1;
    RETURN_IF_ERROR(Normalize(w_.final_norm, out_rows, hidden.as<float>() + (L_ - out_rows) * d, normed.as<float>()));
    ASSIGN_OR_RETURN(Operand normed_op, MakeOperand(normed.as<float>(), out_rows, d, 0));
    ASSIGN_OR_RETURN(StreamBuffer device_logits, Floats(out_rows * c_.vocab_size));  // (rows, vocab)
    RETURN_IF_ERROR(Project(out_rows, normed_op, w_.lm_head, DeviceVector{}, device_logits.as<float>(), 0, false));
    logits.resize(out_rows * c_.vocab_size);
    RETURN_IF_ERROR(Check("logits", cudaMemcpyAsync(logits.data(), device_logits.get(), logits.size() * sizeof(float),
                                                    cudaMemcpyDeviceToHost, stream_)));
  }
  RETURN_IF_ERROR(Sync(stream_));
  return logits;
}

}  // namespace

absl::StatusOr<std::vector<float>> ForwardCuda(const DeviceWeights& w, CudaShardState& state,
                                               absl::Span<const int32_t> ids, LogitsRows rows,
                                               const ShardContext& shard, cudaStream_t stream) {
  ForwardPass pass(w, state, shard, stream);
  return pass.Run(ids, rows);
}

int64_t ActivationBytesPerToken(const ModelConfig& c, ElementType type) {
  const int64_t f32 = sizeof(float);
  const int64_t kv = ElementBytes(type);
  const int64_t copy = type == ElementType::kF32 ? 0 : kv;  // a GEMM operand's bf16 copy (fp32: none)
  const int64_t d = c.hidden_size;
  const int64_t common = 2 * f32 * d + copy * d;  // residual stream, normed rows and their operand
  int64_t widest = 0;
  if (c.CountBlocks(BlockKind::kMamba) > 0) {
    const MambaConfig& m = c.mamba;
    widest = std::max(widest, f32 * (m.in_proj_width() + m.conv_channels() + m.num_heads + m.d_inner()) +
                                  copy * m.d_inner());  // proj, conv, dt, y, y's operand
  }
  if (c.CountBlocks(BlockKind::kAttention) > 0) {
    const AttentionConfig& a = c.attention;
    const int64_t q = a.num_heads * a.head_dim;
    const int64_t kv_width = a.num_kv_heads * a.head_dim;
    widest = std::max(widest, f32 * (3 * q + 2 * kv_width + 2 * a.num_heads) + 2 * copy * q +
                                  4 * kv * kv_width);  // q, out, part; k/v new; lse; operands; ring send + recv
  }
  if (c.CountBlocks(BlockKind::kMlp) > 0) {
    const int64_t inner = c.mlp.intermediate_size;
    const int64_t gate = c.mlp.activation == MlpActivation::kSwiGlu ? inner : 0;
    widest = std::max(widest, f32 * (inner + gate) + copy * inner);
  }
  return (common + widest) * 5 / 4;
}

absl::StatusOr<AttentionPartial> AttendStoredKvCuda(const DeviceWeights& w, const CudaShardState& state,
                                                    int64_t attention_slot, absl::Span<const float> q,
                                                    int64_t q_len, int64_t q_position0, cudaStream_t stream) {
  const AttentionConfig& a = w.config.attention;
  if (attention_slot < 0 || attention_slot >= static_cast<int64_t>(state.attention.size())) {
    return absl::InvalidArgumentError(absl::StrCat("no attention layer ", attention_slot));
  }
  const int64_t q_width = a.num_heads * a.head_dim;
  if (q_len <= 0 || static_cast<int64_t>(q.size()) != q_len * q_width) {
    return absl::InvalidArgumentError(absl::StrCat("query has ", q.size(), " floats, expected ", q_len, " x ", q_width));
  }
  const DeviceKv& kv = state.attention[attention_slot];
  const int64_t eb = ElementBytes(w.type);
  ASSIGN_OR_RETURN(StreamBuffer q_f32, StreamBuffer::Allocate(q.size() * sizeof(float), stream));  // (q_len, Hq, D)
  RETURN_IF_ERROR(CudaStatus("AttendKv query", cudaMemcpyAsync(q_f32.get(), q.data(), q.size() * sizeof(float),
                                                               cudaMemcpyHostToDevice, stream)));
  ASSIGN_OR_RETURN(StreamBuffer q_op, StreamBuffer::Allocate(q.size() * eb, stream));  // (q_len, Hq, D) K/V type
  RETURN_IF_ERROR(
      cuda::Cast(CastParams{q_len, q_width, ElementType::kF32, q_f32.as<float>(), 0, w.type, q_op.get(), 0}, stream));
  ASSIGN_OR_RETURN(StreamBuffer out, StreamBuffer::Allocate(q.size() * sizeof(float), stream));  // (q_len, Hq, D)
  ASSIGN_OR_RETURN(StreamBuffer lse, StreamBuffer::Allocate(q_len * a.num_heads * sizeof(float), stream));  // (q_len, Hq)
  AttentionParams ap =
      block_params::Attention(a, q_len, q_position0, kv.tokens, state.kv_begin_, out.as<float>(), lse.as<float>());
  ap.type = w.type;
  ap.q = q_op.get();
  ap.k = kv.k.get();
  ap.v = kv.v.get();
  RETURN_IF_ERROR(cuda::Attention(ap, stream));
  AttentionPartial part;
  part.out.resize(q.size());
  part.lse.resize(q_len * a.num_heads);
  RETURN_IF_ERROR(CudaStatus("AttendKv result", cudaMemcpyAsync(part.out.data(), out.get(), out.bytes(),
                                                                cudaMemcpyDeviceToHost, stream)));
  RETURN_IF_ERROR(CudaStatus("AttendKv result", cudaMemcpyAsync(part.lse.data(), lse.get(), lse.bytes(),
                                                                cudaMemcpyDeviceToHost, stream)));
  RETURN_IF_ERROR(CudaStatus("AttendKv", cudaStreamSynchronize(stream)));
  return part;
}

}  // namespace tessera::cuda_engine
