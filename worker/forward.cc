// One LayerLoop object per call: it holds the call's scratch (freed in stream
// order as each block's buffers go out of scope) and runs block after block.
// A pass is one or more segments: a request's consecutive rows with its own
// state. Prefill is one segment of L rows; a decode step is N segments of one
// row each (N = 1 alone, more in a batch: DecodeStep). Every op that is the
// same for all rows runs once over all L rows. In a decode step the conv and
// SSM updates and the attention over each request's own K/V are batched ops
// too (ConvStep, SsdStep, DecodeRopeAppend, DecodeAttention), which find
// each request's states, K/V, position and token through one input block
// uploaded once per step (decode_step_inputs.h); the host's bookkeeping
// (K/V rows in use, positions) follows the pass. So the step's ops are the
// same every step, and on a GPU a step of a batch-size bucket is captured
// once as a graph and replayed (decode_graphs.h). What remains per request:
// its split-KV queries (such rows never run on a graph). In a batched step a
// segment's own failure (a split-KV query) marks that segment and the pass
// goes on for the others.
//
// Precision follows the backend's matrix type (bf16 or fp32; backend.h): the
// residual stream, the scan's output y, attention's output and statistics,
// the MoE router's input and every state are fp32; everything a matrix
// product reads or writes between them is in the matrix type, so on bf16 the
// normed rows, the projections' outputs, the conv's input and output (the
// scan's x, B, C), the activations and the gated norm's output are bf16, each
// op widening to fp32 as it reads and rounding once as it writes. Where an
// fp32 tensor feeds a matrix product (attention's output, the router's input
// on its way to the experts) it is cast once (As). On fp32 every tensor
// is fp32 and the ops compute exactly what the CPU reference does.
//
// Progress (ShardContext::on_layer_done) never stalls the device: each layer
// ends with a mark on the stream, and the layers whose marks the device has
// passed are reported as later layers are enqueued; the rest once the last
// layer is enqueued, as each completes.
#include "worker/forward.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/decode_graphs.h"
#include "worker/decode_step_inputs.h"
#include "worker/layer_params.h"
#include "worker/peer_exchange.h"

namespace tessera {
namespace {

using layer_params::MambaActivations;

// One request's rows of a pass.
struct Segment {
  ShardState* state = nullptr;
  const ShardContext* ctx = nullptr;  // never null: split-KV queries (remote_kv)
  int64_t row0 = 0;                   // first row in the pass
  int64_t len = 0;                    // rows
  int64_t position0 = 0;              // global position of its first row: state->num_tokens() at the start
  absl::Status status;                // its own part failed (a batched step goes on without it)
};

class LayerLoop {
 public:
  // `ctx` is the pass's: sharded prefill and progress (one segment only).
  // With `isolate_segment_failures`, a segment's own failure is recorded in
  // its status instead of ending the pass.
  LayerLoop(Backend& backend, OpStream& ops, const ModelConfig& config, absl::Span<Segment> segments,
            const ShardContext& ctx, bool isolate_segment_failures)
      : backend_(backend), ops_(ops), c_(config), t_(backend.tensors()), segments_(segments), ctx_(ctx),
        isolate_(isolate_segment_failures), L_(RowsOf(segments)), one_token_each_(OneTokenEach(segments)) {}

  // `ids`: every segment's tokens, in segment order. With LogitsRows::kLast,
  // the last row of every segment (one segment, or segments of one row).
  absl::StatusOr<std::vector<float>> Run(absl::Span<const int32_t> ids, LogitsRows rows);
  // A decode step (every segment one row, none sharded) on `bucket`'s graph:
  // the first `real` segments are the step's rows, the rest padding rows
  // (never advanced). Captures the graph on the bucket's second step (the
  // first runs the same ops eagerly, loading every kernel). Returns the real
  // rows' logits.
  absl::StatusOr<std::vector<float>> RunOnGraph(absl::Span<const int32_t> ids, DecodeGraphs::Bucket& bucket,
                                                const Tensor& blas_workspace, int64_t real);

 private:
  static int64_t RowsOf(absl::Span<const Segment> segments) {
    int64_t rows = 0;
    for (const Segment& s : segments) rows += s.len;
    return rows;
  }
  static bool OneTokenEach(absl::Span<const Segment> segments) {
    return std::all_of(segments.begin(), segments.end(), [](const Segment& s) { return s.len == 1; });
  }
  absl::StatusOr<Buffer> F32(int64_t rows, int64_t cols) { return ops_.Scratch(rows, cols, ElementType::kF32); }
  // Scratch in the matrix type: what a matrix product reads or writes.
  absl::StatusOr<Buffer> Matrix(int64_t rows, int64_t cols) { return ops_.Scratch(rows, cols, backend_.matrix_type()); }
  absl::Status Copy(const Tensor& from, const Tensor& to) { return ops_.Run(layer_params::Copy(from, to)); }
  // `x` in `type`: x itself when it is already, else its copy in `storage`.
  absl::StatusOr<Tensor> As(ElementType type, const Tensor& x, Buffer& storage);
  absl::Status Project(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y, bool accumulate) {
    return RunLinear(layer_params::Linear(x, weight, bias, y, accumulate));
  }
  // With the captured step's cuBLAS workspace, when there is one.
  absl::Status RunLinear(LinearParams p) {
    p.workspace = blas_workspace_.data;
    p.workspace_bytes = blas_workspace_.empty() ? 0 : blas_workspace_.span_bytes();
    return ops_.Run(p);
  }
  // A decode step of the segments: the input block up, the step, the logits
  // back (none with LogitsRows::kNone), then the host's bookkeeping.
  absl::StatusOr<std::vector<float>> RunDecodeStep(absl::Span<const int32_t> ids, LogitsRows rows);
  // The step's ops over the input block at `inputs` (the backend's memory),
  // the logits into `logits` (rows, vocab) unless it is empty. Enqueues only:
  // nothing here waits for the device or changes host state.
  absl::Status EnqueueDecodeStep(const DecodeStepLayout& layout, const void* inputs, const Tensor& logits);
  // The host's part of a finished step of segments [0, count): a K/V row more, a position on.
  void AdvanceDecodeStep(int64_t count);
  // The blocks over `hidden` (L, hidden) fp32 (embedded), `normed` (L, hidden) their scratch.
  absl::Status Blocks(const Tensor& hidden, const Tensor& normed);
  // Final norm (into `normed`) and lm_head of `last` (rows, hidden) into `logits` (rows, vocab).
  absl::Status Logits(const Tensor& last, const Tensor& normed, const Tensor& logits);
  // A sharded prefill: checks the pieces against the pass and the state, and
  // notes which rows are which of this rank's pieces (local_, rank_pieces_,
  // held_pieces_, rank_rows_, slot_of_, round_first_, round_end_, states_end_).
  absl::Status PlanShardPieces(absl::Span<const int32_t> ids);
  // A prefill exchange's tag: each round's blocks count on from the last
  // round's, so no tag of a round meets one of the round before.
  uint64_t Tag(int64_t block, ExchangeKind kind, int64_t step = 0) const {
    return ExchangeTag(ctx_.round * static_cast<int64_t>(t_.blocks.size()) + block, kind, step);
  }
  absl::Status LayerDone(size_t block_index);
  // Reports the layers whose marks the device has passed, in order; with
  // `wait`, every layer marked so far, as each completes.
  absl::Status ReportProgress(bool wait);

  absl::Status Mamba(const MambaTensors& w, int64_t slot, int64_t block, const Tensor& normed,
                     const Tensor& residual);
  // A sharded prefill's conv and scan, each of this rank's pieces from the
  // others' halo and summaries; the layer's states advance to states_end_.
  absl::Status MambaSharded(const MambaTensors& w, int64_t slot, int64_t block, const MambaActivations& a);
  absl::StatusOr<std::vector<Buffer>> GatherConvHalos(int64_t block, const Tensor& xbc, const Tensor& tail_before);
  absl::Status AddInitialStatesFromPeers(const MambaTensors& w, const MambaActivations& a, int64_t block,
                                         const Tensor& log_decays, const std::vector<Tensor>& states,
                                         const Tensor& state);
  // Folds the summaries of pieces [from, to) of this round (in `all`, by
  // slot_of_) onto `initial` (empty: zeros) into `out` (H, P·N); one op per
  // run of them laid out one after another.
  absl::Status FoldSummaries(const Tensor& all, int64_t from, int64_t to, Tensor initial, const Tensor& out);

  absl::Status Attention(const AttentionTensors& w, int64_t slot, int64_t block, const Tensor& normed,
                         const Tensor& residual);
  absl::Status AttendOwnKv(int64_t slot, const Tensor& q, const Tensor& out, const Tensor& lse);
  // A sharded prefill: each of this rank's pieces over the K/V of its own
  // pieces up to it (earlier rounds' too), then over every earlier piece the
  // ring brings.
  absl::Status AttendOwnPieces(const Tensor& q, const KvCache& kv, const Tensor& out, const Tensor& lse,
                               const Tensor& part_out, const Tensor& part_lse);
  absl::Status AttendRing(int64_t block, const Tensor& q, const KvCache& kv, const Tensor& out, const Tensor& lse,
                          const Tensor& part_out, const Tensor& part_lse);
  // q's rows of local piece i over keys/values at global positions from
  // `kv_begin`, merged into out/lse (written when `first`).
  absl::Status AttendPiece(size_t i, const Tensor& q, const Tensor& keys, const Tensor& values, int64_t kv_begin,
                           bool first, const Tensor& out, const Tensor& lse, const Tensor& part_out,
                           const Tensor& part_lse);
  absl::Status AttendRemote(int64_t slot, const Tensor& q, const Tensor& out, const Tensor& lse);
  absl::Status MergePartials(const Segment& s, const std::vector<AttentionPartial>& parts, const Tensor& out,
                             const Tensor& lse);

  absl::Status Mlp(const MlpTensors& w, const Tensor& normed, const Tensor& residual);
  absl::Status Moe(const MoeTensors& w, const Tensor& router_in, const Tensor& normed, const Tensor& residual);
  // One block: its norm of `hidden` into `normed` (and, for the MoE router,
  // `router_in`), then its op, the output added into `out`.
  absl::Status Block(const BlockTensors& block, int64_t index, const Tensor& hidden, const Tensor& normed,
                     const Tensor& router_in, const Tensor& out);

  Backend& backend_;
  OpStream& ops_;
  const ModelConfig& c_;
  const ModelTensors& t_;
  absl::Span<Segment> segments_;
  const ShardContext& ctx_;
  const bool isolate_;
  const int64_t L_;             // rows of the pass, all segments
  const bool one_token_each_;   // every segment is one row
  bool decode_step_ = false;    // one row each and no prefill exchanges: the batched one-token ops
  DecodeStepTable table_;  // a decode step's input block (decode_step_inputs.h), in the backend's memory
  Tensor blas_workspace_;  // a captured step's cuBLAS workspace; empty: the handle's own
  std::optional<PeerExchange> exchange_;  // prefill across shards
  // This rank's pieces of this pass (its round), in order of position.
  struct LocalPiece {
    int64_t row0 = 0;   // first row in the pass
    int64_t len = 0;    // rows
    int64_t begin = 0;  // global position of its first row
    int64_t order = 0;  // index in ctx_.pieces
  };
  std::vector<LocalPiece> local_;
  std::vector<std::vector<int64_t>> rank_pieces_;  // (ranks): each rank's piece indices of this round, in order
  std::vector<std::vector<int64_t>> held_pieces_;  // (ranks): of this round and earlier ones (its K/V rows), in order
  std::vector<int64_t> rank_rows_;                 // (ranks): tokens of held_pieces_ (its ring block's rows)
  // (pieces): where a piece of this round puts its contribution in an
  // all-gather, in contributions of one piece: rank · pieces a rank + its index among the rank's
  std::vector<int64_t> slot_of_;
  int64_t round_first_ = 0;  // this round's pieces are ctx_.pieces[round_first_, round_end_)
  int64_t round_end_ = 0;
  // The Mamba states leave the pass at the start of ctx_.pieces[states_end_]:
  // the end of this rank's last piece, or, when a later round follows, the
  // round's end (where every rank's next round starts from).
  int64_t states_end_ = 0;
  struct LayerMark {
    int64_t mark;         // OpStream::Mark's number (a stream may serve several passes)
    int64_t layers_done;  // once the device passes it
  };
  std::vector<LayerMark> layer_marks_;  // in order
  size_t reported_marks_ = 0;           // those reported through on_layer_done
};

absl::StatusOr<Tensor> LayerLoop::As(ElementType type, const Tensor& x, Buffer& storage) {
  if (x.type == type) return x;
  ASSIGN_OR_RETURN(storage, ops_.Scratch(x.rows, x.cols, type));  // (rows, cols) of `type`
  RETURN_IF_ERROR(Copy(x, storage.view()));
  return storage.view();
}

absl::Status LayerLoop::PlanShardPieces(absl::Span<const int32_t> ids) {
  if (!ctx_.sharded()) return absl::OkStatus();
  const PeerTransport& peers = *ctx_.peers;
  const int ranks = peers.size();
  const std::vector<ShardPiece>& pieces = ctx_.pieces;
  const int64_t count = static_cast<int64_t>(pieces.size());
  const int round = ctx_.round;
  if (round < 0 || round >= ctx_.rounds()) {
    return absl::InternalError(absl::StrCat("round ", round, " of a plan of ", ctx_.rounds()));
  }
  rank_pieces_.assign(ranks, {});
  held_pieces_.assign(ranks, {});
  rank_rows_.assign(ranks, 0);
  slot_of_.assign(count, 0);
  round_first_ = count;
  round_end_ = 0;
  for (int64_t k = 0; k < count; ++k) {
    const ShardPiece& p = pieces[k];
    if (p.rank < 0 || p.rank >= ranks || p.end <= p.begin ||
        (k > 0 && (p.begin != pieces[k - 1].end || p.round < pieces[k - 1].round))) {
      return absl::InternalError(absl::StrCat("piece ", k, " [", p.begin, ", ", p.end, ") of rank ", p.rank,
                                              " in round ", p.round,
                                              ": pieces must be non-empty, in order, in rounds in order, held by "
                                              "ranks of the group"));
    }
    if (p.round > round) continue;
    held_pieces_[p.rank].push_back(k);
    rank_rows_[p.rank] += p.len();
    if (p.round < round) continue;
    rank_pieces_[p.rank].push_back(k);
    round_first_ = std::min(round_first_, k);
    round_end_ = k + 1;
  }
  const int64_t per_rank = (round_end_ - round_first_) / ranks;
  for (int r = 0; r < ranks; ++r) {
    if (per_rank < 1 || static_cast<int64_t>(rank_pieces_[r].size()) != per_rank) {
      return absl::InternalError(absl::StrCat("rank ", r, " holds ", rank_pieces_[r].size(), " pieces of round ",
                                              round, ", not ", per_rank));
    }
    for (int64_t i = 0; i < per_rank; ++i) slot_of_[rank_pieces_[r][i]] = r * per_rank + i;
  }
  local_.clear();
  int64_t rows = 0;
  for (const int64_t k : rank_pieces_[peers.rank()]) {
    local_.push_back({rows, pieces[k].len(), pieces[k].begin, k});
    rows += pieces[k].len();
  }
  states_end_ = round + 1 < ctx_.rounds() ? round_end_ : local_.back().order + 1;
  // The state continues this rank's earlier pieces: its K/V rows are theirs,
  // its position is the end of the last one (the first piece's start before any).
  const std::vector<int64_t>& held = held_pieces_[peers.rank()];
  const int64_t earlier = static_cast<int64_t>(held.size()) - per_rank;
  const int64_t position0 = earlier > 0 ? pieces[held[earlier - 1]].end : local_[0].begin;
  const int64_t kv_rows = rank_rows_[peers.rank()] - rows;
  const Segment& s = segments_[0];
  const bool kv_held = std::all_of(s.state->attention.begin(), s.state->attention.end(),
                                   [&](const KvCache& kv) { return kv.tokens == kv_rows; });
  if (segments_.size() != 1 || rows != static_cast<int64_t>(ids.size()) || position0 != s.position0 ||
      s.state->kv_begin() != pieces[held[0]].begin || !kv_held) {
    return absl::InternalError(absl::StrCat("shard ", peers.rank(), " holds ", rows, " tokens from position ",
                                            local_[0].begin, " in round ", round, " after ", kv_rows,
                                            " tokens but the pass has ", ids.size(), " tokens from position ",
                                            s.position0, " in ", segments_.size(), " segments over a state from ",
                                            s.state->kv_begin()));
  }
  return absl::OkStatus();
}

// A layer ends where the next block belongs to another Hugging Face layer.
// Progress means work done, not work enqueued: the layer is reported once the
// device passes its mark.
absl::Status LayerLoop::LayerDone(size_t block_index) {
  if (!ctx_.on_layer_done) return absl::OkStatus();
  const std::vector<BlockTensors>& blocks = t_.blocks;
  const int64_t layer = blocks[block_index].spec.layer;
  if (block_index + 1 < blocks.size() && blocks[block_index + 1].spec.layer == layer) return absl::OkStatus();
  ASSIGN_OR_RETURN(const int64_t mark, ops_.Mark());
  layer_marks_.push_back({mark, layer + 1});
  return ReportProgress(/*wait=*/false);
}

absl::Status LayerLoop::ReportProgress(bool wait) {
  while (reported_marks_ < layer_marks_.size()) {
    const LayerMark& next = layer_marks_[reported_marks_];
    ASSIGN_OR_RETURN(const bool reached, ops_.MarkReached(next.mark, wait));
    if (!reached) return absl::OkStatus();
    ++reported_marks_;
    RETURN_IF_ERROR(ctx_.on_layer_done(next.layers_done, c_.num_layers));
  }
  return absl::OkStatus();
}

// The K-1 pre-conv rows before each of this rank's pieces, from the tails
// every rank sends: (K-1, C) rows a piece, its last min(K-1, len) rows at the
// bottom (zeros above); a piece's halo is the last K-1 valid rows of the
// pieces of this round before it, in order, then of `tail_before` (K-1, C):
// the rows before the round (zeros before token 0; a window may span several
// short pieces). One halo more, last: the rows before piece states_end_
// (the layer's conv tail after the pass).
absl::StatusOr<std::vector<Buffer>> LayerLoop::GatherConvHalos(int64_t block, const Tensor& xbc,
                                                               const Tensor& tail_before) {
  const MambaConfig& m = c_.mamba;
  const int64_t channels = m.conv_channels();
  const int64_t window = m.conv_kernel - 1;
  const int64_t mine = static_cast<int64_t>(local_.size());
  std::vector<Buffer> halos;  // (pieces here + 1) of (K-1, C)
  for (int64_t i = 0; i <= mine; ++i) {
    ASSIGN_OR_RETURN(Buffer halo, F32(window, channels));  // (K-1, C)
    halos.push_back(std::move(halo));
  }
  if (window == 0) return halos;
  ASSIGN_OR_RETURN(Buffer tails, F32(mine * window, channels));  // (pieces here · (K-1), C): bottom-aligned
  RETURN_IF_ERROR(ops_.Zero(tails.view()));
  for (int64_t i = 0; i < mine; ++i) {
    const LocalPiece& p = local_[i];
    const int64_t take = std::min(window, p.len);
    RETURN_IF_ERROR(Copy(xbc.Rows(p.row0 + p.len - take, take), tails.view().Rows(i * window + window - take, take)));
  }
  ASSIGN_OR_RETURN(Buffer all, F32(exchange_->size() * mine * window, channels));  // (pieces · (K-1), C)
  RETURN_IF_ERROR(exchange_->AllGather(Tag(block, ExchangeKind::kConvTail), tails.view(), all.view()));
  for (int64_t i = 0; i <= mine; ++i) {
    const Tensor halo = halos[i].view();
    int64_t filled = 0;  // walk back from the piece before, filling the halo bottom-up
    for (int64_t k = (i < mine ? local_[i].order : states_end_) - 1; k >= round_first_ && filled < window; --k) {
      const int64_t take = std::min({window, ctx_.pieces[k].len(), window - filled});
      RETURN_IF_ERROR(Copy(all.view().Rows(slot_of_[k] * window + window - take, take),
                           halo.Rows(window - filled - take, take)));
      filled += take;
    }
    if (filled < window) {
      RETURN_IF_ERROR(Copy(tail_before.Rows(filled, window - filled), halo.Rows(0, window - filled)));
    }
  }
  return halos;
}

absl::Status LayerLoop::FoldSummaries(const Tensor& all, int64_t from, int64_t to, Tensor initial,
                                      const Tensor& out) {
  const MambaConfig& m = c_.mamba;
  for (int64_t k = from; k < to;) {
    int64_t run = 1;
    while (k + run < to && slot_of_[k + run] == slot_of_[k] + run) ++run;
    SsdComposeParams p = layer_params::Compose(m, all.Rows(slot_of_[k], run), run, out);
    if (!initial.empty()) p.initial_state = initial.f32();
    RETURN_IF_ERROR(ops_.Run(p));
    initial = out;
    k += run;
  }
  return absl::OkStatus();
}

// Each piece here ran from a zero state; all-gather every piece's (log Λ, S),
// compose each piece's h_in over the pieces of this round before it, in
// order, from `state` (H, P·N: the state at the round's start; nothing
// before round 0's), and add its contribution to the piece's y and final
// state (DESIGN.md). A piece here after another one here starts its fold
// from that one's corrected final state, the exact state at its end.
// `log_decays` (pieces here, H); `states[i]` (H, P·N) piece i's final state.
// Then `state` becomes the state before piece states_end_: this rank's last
// piece's, with the later pieces of the round up to it folded on.
absl::Status LayerLoop::AddInitialStatesFromPeers(const MambaTensors& w, const MambaActivations& a, int64_t block,
                                                  const Tensor& log_decays, const std::vector<Tensor>& states,
                                                  const Tensor& state) {
  const MambaConfig& m = c_.mamba;
  const int64_t heads = m.num_heads;
  const int64_t per_head = m.head_dim * m.state_size;
  const int64_t width = heads + heads * per_head;
  const int64_t mine = static_cast<int64_t>(local_.size());
  ASSIGN_OR_RETURN(Buffer summary, F32(mine, width));  // (pieces here, H + H·P·N): [log Λ | S] each
  for (int64_t i = 0; i < mine; ++i) {
    RETURN_IF_ERROR(Copy(log_decays.Rows(i, 1), summary.view().Rows(i, 1).Cols(0, heads)));
    RETURN_IF_ERROR(Copy(states[i].Reshaped(1, heads * per_head), summary.view().Rows(i, 1).Cols(heads, heads * per_head)));
  }
  ASSIGN_OR_RETURN(Buffer all, F32(exchange_->size() * mine, width));  // (pieces, H + H·P·N), by slot_of_
  RETURN_IF_ERROR(exchange_->AllGather(Tag(block, ExchangeKind::kSsdSummary), summary.view(), all.view()));
  Buffer h_in;  // (H, P·N)
  // The exact state at the end of piece `next` - 1; empty: zeros before piece 0.
  Tensor carried = round_first_ > 0 ? state : Tensor{};
  int64_t next = round_first_;  // the first piece not folded into `carried`
  for (int64_t i = 0; i < mine; ++i) {
    const int64_t before = local_[i].order;  // pieces next..before-1 come first
    if (before > next || !carried.empty()) {
      Tensor initial = carried;  // this piece's h_in: `carried`, then the pieces next..before-1 folded on
      if (before > next) {
        if (h_in.view().empty()) {
          ASSIGN_OR_RETURN(h_in, F32(heads, per_head));
        }
        RETURN_IF_ERROR(FoldSummaries(all.view(), next, before, initial, h_in.view()));
        initial = h_in.view();
      }
      const MambaActivations rows = layer_params::Rows(a, local_[i].row0, local_[i].len);
      Buffer c_copy;  // the initial state's term reads the scan's C (len, G·N) in fp32
      ASSIGN_OR_RETURN(const Tensor c, As(ElementType::kF32, layer_params::ConvC(m, rows), c_copy));
      RETURN_IF_ERROR(ops_.Run(layer_params::AddInitialState(m, w, rows, c, initial, states[i])));
    }
    carried = states[i];  // now the exact state at this piece's end
    next = before + 1;
  }
  if (next == states_end_) return Copy(carried, state);
  return FoldSummaries(all.view(), next, states_end_, carried, state);
}

// Every piece here convolves from its halo and scans from a zero state, then
// takes the earlier pieces' part. The layer's conv and SSM states go from the
// round's start to states_end_ (on the last rank of the last round: the
// sequence's end, where decode continues).
absl::Status LayerLoop::MambaSharded(const MambaTensors& w, int64_t slot, int64_t block, const MambaActivations& a) {
  const MambaConfig& m = c_.mamba;
  MambaState& st = segments_[0].state->mamba[slot];
  const int64_t mine = static_cast<int64_t>(local_.size());
  ASSIGN_OR_RETURN(const std::vector<Buffer> halos,
                   GatherConvHalos(block, a.proj.Cols(m.d_inner(), m.conv_channels()), st.conv.view()));
  ASSIGN_OR_RETURN(Buffer conv_window, F32(st.conv.view().rows, st.conv.view().cols));  // (K-1, C): unused
  ASSIGN_OR_RETURN(Buffer piece_states, F32(mine, m.num_heads * m.head_dim * m.state_size));  // (pieces here, H·P·N)
  std::vector<Tensor> states;  // (pieces here) of (H, P·N)
  for (int64_t i = 0; i < mine; ++i) {
    states.push_back(piece_states.view().Rows(i, 1).Reshaped(m.num_heads, m.head_dim * m.state_size));
    const MambaActivations rows = layer_params::Rows(a, local_[i].row0, local_[i].len);
    RETURN_IF_ERROR(ops_.Run(layer_params::Conv(m, w, rows, halos[i].view(), conv_window.view())));
  }
  RETURN_IF_ERROR(ops_.Run(layer_params::Dt(m, w, a)));
  ASSIGN_OR_RETURN(Buffer log_decays, F32(mine, m.num_heads));  // (pieces here, H)
  for (int64_t i = 0; i < mine; ++i) {
    const MambaActivations rows = layer_params::Rows(a, local_[i].row0, local_[i].len);
    RETURN_IF_ERROR(ops_.Run(layer_params::Scan(m, w, rows, Tensor{}, states[i], log_decays.view().Rows(i, 1))));
  }
  RETURN_IF_ERROR(AddInitialStatesFromPeers(w, a, block, log_decays.view(), states, st.ssm.view()));
  if (m.conv_kernel > 1) RETURN_IF_ERROR(Copy(halos[mine].view(), st.conv.view()));
  return absl::OkStatus();
}

absl::Status LayerLoop::Mamba(const MambaTensors& w, int64_t slot, int64_t block, const Tensor& normed,
                              const Tensor& residual) {
  const MambaConfig& m = c_.mamba;
  const bool sharded = exchange_.has_value();
  const bool step = decode_step_;  // the one-token update, which reads fp32 x, B, C
  ASSIGN_OR_RETURN(Buffer proj, Matrix(L_, m.in_proj_width()));  // (L, [z | xBC | dt])
  ASSIGN_OR_RETURN(Buffer conv, step ? F32(L_, m.conv_channels())
                                     : Matrix(L_, m.conv_channels()));  // (L, C) = [x | B | C] after conv + SiLU
  Buffer dt;  // (L, H): the scan's step sizes (the one-token update applies softplus itself)
  if (!step) {
    ASSIGN_OR_RETURN(dt, F32(L_, m.num_heads));
  }
  ASSIGN_OR_RETURN(Buffer y, F32(L_, m.d_inner()));  // (L, H·P)
  const MambaActivations a{proj.view(), conv.view(), dt.view(), y.view()};
  RETURN_IF_ERROR(Project(normed, w.in_proj, w.in_proj_bias, a.proj, false));

  if (step) {  // every request's conv window and SSM state advance by its own token
    const int64_t n = static_cast<int64_t>(segments_.size());
    RETURN_IF_ERROR(ops_.Run(layer_params::ConvStep(m, w, a, table_.conv + slot * n)));
    RETURN_IF_ERROR(ops_.Run(layer_params::Step(m, w, a, table_.ssm + slot * n)));
  } else if (sharded) {
    RETURN_IF_ERROR(MambaSharded(w, slot, block, a));
  } else {
    for (const Segment& s : segments_) {
      MambaState& st = s.state->mamba[slot];
      const MambaActivations rows = layer_params::Rows(a, s.row0, s.len);
      RETURN_IF_ERROR(ops_.Run(layer_params::Conv(m, w, rows, st.conv.view(), st.conv.view())));
    }
    RETURN_IF_ERROR(ops_.Run(layer_params::Dt(m, w, a)));
    for (const Segment& s : segments_) {
      MambaState& st = s.state->mamba[slot];
      const MambaActivations rows = layer_params::Rows(a, s.row0, s.len);
      ASSIGN_OR_RETURN(Buffer log_decay, F32(1, m.num_heads));  // (1, H)
      RETURN_IF_ERROR(ops_.Run(layer_params::Scan(m, w, rows, st.ssm.view(), st.ssm.view(), log_decay.view())));
    }
  }
  RETURN_IF_ERROR(ops_.Run(layer_params::GatedNorm(c_, w, a)));  // over z, in the matrix type
  return Project(layer_params::GatedNormOut(m, a), w.out_proj, w.out_proj_bias, residual, /*accumulate=*/true);
}

absl::Status LayerLoop::AttendPiece(size_t i, const Tensor& q, const Tensor& keys, const Tensor& values,
                                    int64_t kv_begin, bool first, const Tensor& out, const Tensor& lse,
                                    const Tensor& part_out, const Tensor& part_lse) {
  const AttentionConfig& a = c_.attention;
  const LocalPiece& p = local_[i];
  const Tensor q_rows = q.Rows(p.row0, p.len);
  if (first) {
    return ops_.Run(layer_params::Attention(a, q_rows, p.begin, keys, values, kv_begin, out.Rows(p.row0, p.len),
                                            lse.Rows(p.row0, p.len)));
  }
  const Tensor o = part_out.Rows(p.row0, p.len);
  const Tensor l = part_lse.Rows(p.row0, p.len);
  RETURN_IF_ERROR(ops_.Run(layer_params::Attention(a, q_rows, p.begin, keys, values, kv_begin, o, l)));
  return ops_.Run(layer_params::Merge(a, out.Rows(p.row0, p.len), lse.Rows(p.row0, p.len), o, l));
}

// Each piece here attends causally to itself and fully to the pieces here
// before it, of this round and earlier ones (the K/V rows are this rank's
// held pieces, in order).
absl::Status LayerLoop::AttendOwnPieces(const Tensor& q, const KvCache& kv, const Tensor& out, const Tensor& lse,
                                        const Tensor& part_out, const Tensor& part_lse) {
  for (size_t i = 0; i < local_.size(); ++i) {
    int64_t row = 0;  // of the held piece in the K/V
    for (const int64_t k : held_pieces_[exchange_->rank()]) {
      const ShardPiece& piece = ctx_.pieces[k];
      if (piece.begin > local_[i].begin) break;  // a later piece: causally invisible
      RETURN_IF_ERROR(AttendPiece(i, q, kv.k.view().Rows(row, piece.len()), kv.v.view().Rows(row, piece.len()),
                                  piece.begin, /*first=*/row == 0, out, lse, part_out, part_lse));
      row += piece.len();
    }
  }
  return absl::OkStatus();
}

// Ring attention: this rank's K/V (all its pieces, of this round and earlier
// ones) travels around the ring while every rank attends each of its pieces
// to every earlier piece of the blocks it receives. Blocks travel in the K/V
// element type: (2·rows, Hkv·D), the rank's K rows then its V rows, its
// pieces in order.
absl::Status LayerLoop::AttendRing(int64_t block, const Tensor& q, const KvCache& kv, const Tensor& out,
                                   const Tensor& lse, const Tensor& part_out, const Tensor& part_lse) {
  const AttentionConfig& a = c_.attention;
  const int64_t kv_width = a.num_kv_heads * a.head_dim;
  const int size = exchange_->size();
  const int rank = exchange_->rank();
  const int64_t max_len = *std::max_element(rank_rows_.begin(), rank_rows_.end());
  const int64_t held = rank_rows_[rank];
  ASSIGN_OR_RETURN(Buffer send, ops_.Scratch(2 * max_len, kv_width, backend_.matrix_type()));  // (2·rows, Hkv·D)
  ASSIGN_OR_RETURN(Buffer recv, ops_.Scratch(2 * max_len, kv_width, backend_.matrix_type()));  // (2·rows, Hkv·D)
  RETURN_IF_ERROR(Copy(kv.k.view().Rows(0, held), send.view().Rows(0, held)));
  RETURN_IF_ERROR(Copy(kv.v.view().Rows(0, held), send.view().Rows(held, held)));
  // The block of step s comes from rank - s. Each step's block is attended
  // while the next one is already on its way (its shift reads the block
  // being attended and writes the other buffer, attended two steps before).
  auto source_of = [&](int step) { return (rank - step + size) % size; };
  RingShiftInFlight shift;  // after the buffers: an early return waits for it before they go
  RETURN_IF_ERROR(exchange_->StartRingShift(Tag(block, ExchangeKind::kRingKv, 1), send.view().Rows(0, 2 * held),
                                            recv.view().Rows(0, 2 * rank_rows_[source_of(1)]), shift));
  for (int step = 1; step < size; ++step) {
    const int source = source_of(step);
    const int64_t len = rank_rows_[source];
    RETURN_IF_ERROR(exchange_->FinishRingShift(shift));
    std::swap(send, recv);  // `send`: the block of this step
    if (step + 1 < size) {
      RETURN_IF_ERROR(exchange_->StartRingShift(Tag(block, ExchangeKind::kRingKv, step + 1),
                                                send.view().Rows(0, 2 * len),
                                                recv.view().Rows(0, 2 * rank_rows_[source_of(step + 1)]), shift));
    }
    const Tensor held_kv = send.view();
    int64_t row = 0;  // of the source's piece in the block
    for (const int64_t k : held_pieces_[source]) {
      const ShardPiece& piece = ctx_.pieces[k];
      for (size_t i = 0; i < local_.size(); ++i) {
        if (piece.end > local_[i].begin) continue;  // a later piece: causally invisible
        RETURN_IF_ERROR(AttendPiece(i, q, held_kv.Rows(row, piece.len()), held_kv.Rows(len + row, piece.len()),
                                    piece.begin, /*first=*/false, out, lse, part_out, part_lse));
      }
      row += piece.len();
    }
  }
  return absl::OkStatus();
}

// Split-KV decode: each asking segment's partials over the K/V the other
// ranks of its request hold, merged here. The queries travel as fp32 (their
// matrix-type values, widened exactly), all segments' at once (each request
// has its own peers): a batch waits for its slowest round trip, not their sum.
absl::Status LayerLoop::AttendRemote(int64_t slot, const Tensor& q, const Tensor& out, const Tensor& lse) {
  std::vector<Segment*> asking;
  for (Segment& s : segments_) {
    if (s.ctx->queries_remote_kv() && s.status.ok()) asking.push_back(&s);
  }
  if (asking.empty()) return absl::OkStatus();
  const int64_t q_width = c_.attention.num_heads * c_.attention.head_dim;
  Buffer q_copy;
  ASSIGN_OR_RETURN(const Tensor q_f32, As(ElementType::kF32, q, q_copy));
  std::vector<float> host_q(L_ * q_width);  // (L, Hq·D), RoPE applied
  RETURN_IF_ERROR(ops_.Download(q_f32, host_q.data()));
  std::vector<absl::StatusOr<std::vector<AttentionPartial>>> parts(asking.size());
  auto query = [&](size_t i) {
    const Segment& s = *asking[i];
    parts[i] = s.ctx->peers->QueryKv(slot, absl::MakeConstSpan(host_q).subspan(s.row0 * q_width, s.len * q_width),
                                     s.len, s.position0);
  };
  std::vector<std::thread> others;
  for (size_t i = 1; i < asking.size(); ++i) others.emplace_back(query, i);
  query(0);
  for (std::thread& t : others) t.join();
  for (size_t i = 0; i < asking.size(); ++i) {
    Segment& s = *asking[i];
    absl::Status merged = parts[i].status();
    if (merged.ok()) merged = MergePartials(s, *parts[i], out.Rows(s.row0, s.len), lse.Rows(s.row0, s.len));
    if (merged.ok()) continue;
    if (!isolate_) return merged;
    s.status = std::move(merged);  // its row goes on with its own K/V alone; the request fails
  }
  return absl::OkStatus();
}

// Segment `s`'s partials into its rows of the accumulators.
absl::Status LayerLoop::MergePartials(const Segment& s, const std::vector<AttentionPartial>& parts, const Tensor& out,
                                      const Tensor& lse) {
  const AttentionConfig& a = c_.attention;
  const int64_t q_width = a.num_heads * a.head_dim;
  ASSIGN_OR_RETURN(Buffer part_out, F32(s.len, q_width));      // (len, Hq·D)
  ASSIGN_OR_RETURN(Buffer part_lse, F32(s.len, a.num_heads));  // (len, Hq)
  for (const AttentionPartial& part : parts) {
    if (static_cast<int64_t>(part.out.size()) != s.len * q_width ||
        static_cast<int64_t>(part.lse.size()) != s.len * a.num_heads) {
      return absl::InternalError(absl::StrCat("remote attention partial has ", part.out.size(), " + ",
                                              part.lse.size(), " floats, expected ", s.len * q_width, " + ",
                                              s.len * a.num_heads));
    }
    // Uploads from pageable host memory have read their source when they
    // return, so `parts` may go once the loop is done.
    RETURN_IF_ERROR(ops_.Upload(part.out.data(), part_out.view()));
    RETURN_IF_ERROR(ops_.Upload(part.lse.data(), part_lse.view()));
    RETURN_IF_ERROR(ops_.Run(layer_params::Merge(a, out, lse, part_out.view(), part_lse.view())));
  }
  return absl::OkStatus();
}

absl::Status LayerLoop::Attention(const AttentionTensors& w, int64_t slot, int64_t block, const Tensor& normed,
                                  const Tensor& residual) {
  const AttentionConfig& a = c_.attention;
  const int64_t q_width = a.num_heads * a.head_dim;
  const int64_t kv_width = a.num_kv_heads * a.head_dim;

  ASSIGN_OR_RETURN(Buffer qkv, Matrix(L_, q_width + 2 * kv_width));  // (L, [q | k | v])
  const Tensor q = qkv.view().Cols(0, q_width);                       // (L, Hq·D)
  const Tensor k_new = qkv.view().Cols(q_width, kv_width);            // (L, Hkv·D)
  const Tensor v_new = qkv.view().Cols(q_width + kv_width, kv_width);  // (L, Hkv·D)
  if (!w.qkv_proj.empty()) {  // one GEMM over the stacked weights
    RETURN_IF_ERROR(Project(normed, w.qkv_proj, w.qkv_bias, qkv.view(), false));
  } else {
    RETURN_IF_ERROR(Project(normed, w.q_proj, w.q_bias, q, false));
    RETURN_IF_ERROR(Project(normed, w.k_proj, w.k_bias, k_new, false));
    RETURN_IF_ERROR(Project(normed, w.v_proj, w.v_bias, v_new, false));
  }
  if (decode_step_) {  // every row at its position, into its cache: one op (the host counts the rows after)
    const int64_t n = static_cast<int64_t>(segments_.size());
    RETURN_IF_ERROR(ops_.Run(layer_params::DecodeRopeAppend(a, q, k_new, v_new, table_.positions, table_.inv_freq,
                                                            table_.k + slot * n, table_.v + slot * n,
                                                            table_.kv_lens + slot * n)));
  }
  if (a.rotary_dim > 0 && !decode_step_) {  // each run of rows at its own positions
    auto rope = [&](int64_t row0, int64_t len, int64_t position0) -> absl::Status {
      RETURN_IF_ERROR(ops_.Run(layer_params::Rope(a, q.Rows(row0, len), a.num_heads, position0)));
      return ops_.Run(layer_params::Rope(a, k_new.Rows(row0, len), a.num_kv_heads, position0));
    };
    if (exchange_.has_value()) {
      for (const LocalPiece& p : local_) RETURN_IF_ERROR(rope(p.row0, p.len, p.begin));
    } else {
      for (const Segment& s : segments_) RETURN_IF_ERROR(rope(s.row0, s.len, s.position0));
    }
  }
  for (const Segment& s : decode_step_ ? absl::Span<Segment>() : segments_) {
    KvCache& kv = s.state->attention[slot];  // append (the matrix type: a copy)
    RETURN_IF_ERROR(Copy(k_new.Rows(s.row0, s.len), kv.k.view().Rows(kv.tokens, s.len)));
    RETURN_IF_ERROR(Copy(v_new.Rows(s.row0, s.len), kv.v.view().Rows(kv.tokens, s.len)));
    kv.tokens += s.len;
  }

  ASSIGN_OR_RETURN(Buffer out, F32(L_, q_width));     // (L, Hq·D)
  ASSIGN_OR_RETURN(Buffer lse, F32(L_, a.num_heads));  // (L, Hq)
  if (exchange_.has_value()) {
    const KvCache& kv = segments_[0].state->attention[slot];
    ASSIGN_OR_RETURN(Buffer part_out, F32(L_, q_width));     // (L, Hq·D)
    ASSIGN_OR_RETURN(Buffer part_lse, F32(L_, a.num_heads));  // (L, Hq)
    RETURN_IF_ERROR(AttendOwnPieces(q, kv, out.view(), lse.view(), part_out.view(), part_lse.view()));
    RETURN_IF_ERROR(AttendRing(block, q, kv, out.view(), lse.view(), part_out.view(), part_lse.view()));
  } else {
    RETURN_IF_ERROR(AttendOwnKv(slot, q, out.view(), lse.view()));
  }
  RETURN_IF_ERROR(AttendRemote(slot, q, out.view(), lse.view()));

  Buffer out_copy;  // attention writes fp32; the o_proj reads the matrix type
  ASSIGN_OR_RETURN(const Tensor out_op, As(backend_.matrix_type(), out.view(), out_copy));
  return Project(out_op, w.o_proj, w.o_bias, residual, /*accumulate=*/true);
}

// Each segment's queries over the K/V its own state holds here: in a decode
// step one batched op over every request's cache, else per segment.
absl::Status LayerLoop::AttendOwnKv(int64_t slot, const Tensor& q, const Tensor& out, const Tensor& lse) {
  const AttentionConfig& a = c_.attention;
  if (decode_step_) {
    const int64_t n = static_cast<int64_t>(segments_.size());
    return ops_.Run(layer_params::DecodeAttention(a, q, table_.k + slot * n, table_.v + slot * n,
                                                  table_.kv_lens + slot * n, out, lse));
  }
  for (const Segment& s : segments_) {
    const KvCache& kv = s.state->attention[slot];
    RETURN_IF_ERROR(ops_.Run(layer_params::Attention(a, q.Rows(s.row0, s.len), s.position0, kv.keys(), kv.values(),
                                                     s.state->kv_begin(), out.Rows(s.row0, s.len),
                                                     lse.Rows(s.row0, s.len))));
  }
  return absl::OkStatus();
}

absl::Status LayerLoop::Mlp(const MlpTensors& w, const Tensor& normed, const Tensor& residual) {
  const int64_t inner = c_.mlp.intermediate_size;
  Buffer up;  // (L, I) relu², (L, [gate | up]) SwiGLU
  Tensor act;  // (L, I): the down projection's operand, in place over the first I columns of `up`
  switch (c_.mlp.activation) {
    case MlpActivation::kSwiGlu: {
      ASSIGN_OR_RETURN(up, Matrix(L_, 2 * inner));
      const Tensor gate = up.view().Cols(0, inner);
      const Tensor up_half = up.view().Cols(inner, inner);
      if (!w.gate_up_proj.empty()) {  // one GEMM over the stacked weights
        RETURN_IF_ERROR(Project(normed, w.gate_up_proj, w.gate_up_bias, up.view(), false));
      } else {
        RETURN_IF_ERROR(Project(normed, w.gate_proj, w.gate_bias, gate, false));
        RETURN_IF_ERROR(Project(normed, w.up_proj, w.up_bias, up_half, false));
      }
      RETURN_IF_ERROR(ops_.Run(layer_params::SiluMul(gate, up_half, gate)));
      act = gate;
      break;
    }
    case MlpActivation::kRelu2: {
      ASSIGN_OR_RETURN(up, Matrix(L_, inner));
      RETURN_IF_ERROR(Project(normed, w.up_proj, w.up_bias, up.view(), false));
      RETURN_IF_ERROR(ops_.Run(layer_params::ReluSquaredInPlace(up.view())));
      act = up.view();
      break;
    }
  }
  return Project(act, w.down_proj, w.down_bias, residual, /*accumulate=*/true);
}

// Routed experts (fp32 router over the fp32 normed input, then the chosen
// experts, weighted) plus the shared expert or MLP, all added into `out`.
absl::Status LayerLoop::Moe(const MoeTensors& w, const Tensor& router_in, const Tensor& normed, const Tensor& out) {
  const MoeConfig& m = c_.moe;
  if (m.experts > 0) {
    ASSIGN_OR_RETURN(Buffer logits, F32(L_, m.experts));  // (L, E) router logits
    RETURN_IF_ERROR(RunLinear(layer_params::Linear(router_in, w.router, Tensor{}, logits.view(), false)));
    ASSIGN_OR_RETURN(Buffer ids, F32(L_, m.top_k));      // (L, k) int32 expert ids, in 4-byte slots
    ASSIGN_OR_RETURN(Buffer weights, F32(L_, m.top_k));  // (L, k)
    RETURN_IF_ERROR(ops_.Run(layer_params::Route(m, w, logits.view(), ids.view(), weights.view())));
    MoeExpertsParams experts = layer_params::Experts(c_, w, normed, ids.view(), weights.view(), out);
    Buffer workspace;  // (1, bytes / 4): the device's permutation and grouped-GEMM rows; the CPU needs none
    if (backend_.space() == BufferSpace::kDevice) {
      const int64_t bytes = MoeExpertsWorkspaceBytes(experts);
      ASSIGN_OR_RETURN(workspace, F32(1, (bytes + 3) / 4));
      experts.workspace = workspace.view().data;
    }
    RETURN_IF_ERROR(ops_.Run(experts));
  }
  if (w.shared_up.empty()) return absl::OkStatus();
  const int64_t inner = m.shared_intermediate_size * m.shared_experts;
  const bool swiglu = m.activation == MlpActivation::kSwiGlu;
  ASSIGN_OR_RETURN(Buffer up, Matrix(L_, swiglu ? 2 * inner : inner));  // (L, [gate | up]) or (L, Is)
  RETURN_IF_ERROR(Project(normed, w.shared_up, Tensor{}, up.view(), false));
  const Tensor act = up.view().Cols(0, inner);  // (L, Is), in place over the gate (SwiGLU) or up
  if (swiglu) {
    RETURN_IF_ERROR(ops_.Run(layer_params::SiluMul(act, up.view().Cols(inner, inner), act)));
  } else {
    RETURN_IF_ERROR(ops_.Run(layer_params::ReluSquaredInPlace(act)));
  }
  return Project(act, w.shared_down, Tensor{}, out, /*accumulate=*/true);
}

absl::Status LayerLoop::Block(const BlockTensors& block, int64_t index, const Tensor& hidden, const Tensor& normed,
                              const Tensor& router_in, const Tensor& out) {
  if (block.spec.kind == BlockKind::kMoe) {  // the router reads fp32; the experts the matrix type
    RETURN_IF_ERROR(ops_.Run(layer_params::Norm(c_, hidden, block.norm, router_in)));
    RETURN_IF_ERROR(Copy(router_in, normed));  // nothing to do when they are one buffer (fp32)
  } else {
    RETURN_IF_ERROR(ops_.Run(layer_params::Norm(c_, hidden, block.norm, normed)));
  }
  switch (block.spec.kind) {
    case BlockKind::kMamba:
      return Mamba(std::get<MambaTensors>(block.op), block.state_slot, index, normed, out);
    case BlockKind::kAttention:
      return Attention(std::get<AttentionTensors>(block.op), block.state_slot, index, normed, out);
    case BlockKind::kMlp:
      return Mlp(std::get<MlpTensors>(block.op), normed, out);
    case BlockKind::kMoe:
      return Moe(std::get<MoeTensors>(block.op), router_in, normed, out);
  }
  return absl::InternalError("unknown block kind");
}

absl::Status LayerLoop::Blocks(const Tensor& hidden, const Tensor& normed) {
  const int64_t d = c_.hidden_size;
  if (c_.multipliers.embedding != 1.0f) {  // granitemoehybrid scales the embeddings
    RETURN_IF_ERROR(ops_.Run(layer_params::Scale(c_.multipliers.embedding, hidden)));
  }
  Buffer router_in;  // (L, hidden) fp32: the MoE router's input, when the matrix type is not fp32
  if (backend_.matrix_type() != ElementType::kF32 && c_.CountBlocks(BlockKind::kMoe) > 0) {
    ASSIGN_OR_RETURN(router_in, F32(L_, d));
  }
  const Tensor router_view = router_in.view().empty() ? normed : router_in.view();
  // granitemoehybrid scales every block's output before the residual add: the
  // block writes into block_out, added scaled; elsewhere it adds in place.
  const float residual_multiplier = c_.multipliers.residual;
  Buffer block_out;  // (L, hidden) when residual_multiplier != 1
  if (residual_multiplier != 1.0f) {
    ASSIGN_OR_RETURN(block_out, F32(L_, d));
  }
  for (size_t i = 0; i < t_.blocks.size(); ++i) {
    const BlockTensors& block = t_.blocks[i];
    const int64_t index = static_cast<int64_t>(i);
    if (residual_multiplier == 1.0f) {
      RETURN_IF_ERROR(Block(block, index, hidden, normed, router_view, hidden));
    } else {
      RETURN_IF_ERROR(ops_.Zero(block_out.view()));
      RETURN_IF_ERROR(Block(block, index, hidden, normed, router_view, block_out.view()));
      RETURN_IF_ERROR(ops_.Run(layer_params::ScaleAdd(residual_multiplier, block_out.view(), hidden)));
    }
    RETURN_IF_ERROR(LayerDone(i));
  }
  return absl::OkStatus();
}

absl::Status LayerLoop::Logits(const Tensor& last, const Tensor& normed, const Tensor& logits) {
  RETURN_IF_ERROR(ops_.Run(layer_params::Norm(c_, last, t_.final_norm, normed)));
  return Project(normed, t_.lm_head, Tensor{}, logits, false);
}

absl::StatusOr<std::vector<float>> LayerLoop::Run(absl::Span<const int32_t> ids, LogitsRows rows) {
  const int64_t d = c_.hidden_size;
  if (L_ == 0) return absl::InvalidArgumentError("forward pass needs at least one token");
  if (static_cast<int64_t>(ids.size()) != L_) {
    return absl::InternalError(absl::StrCat("the pass has ", ids.size(), " ids for ", L_, " rows"));
  }
  for (const Segment& s : segments_) {
    if (!s.state->has_mamba_states()) {
      return absl::FailedPreconditionError("this shard's Mamba states were dropped; it can only answer AttendKv");
    }
  }
  RETURN_IF_ERROR(PlanShardPieces(ids));
  if (ctx_.sharded()) exchange_.emplace(*ctx_.peers, backend_, ops_, backend_.space());
  for (const Segment& s : segments_) RETURN_IF_ERROR(s.state->ReserveKv(ops_, s.len));
  decode_step_ = one_token_each_ && !exchange_.has_value();
  if (decode_step_) return RunDecodeStep(ids, rows);

  ASSIGN_OR_RETURN(Buffer hidden, F32(L_, d));  // (L, hidden): the residual stream
  RETURN_IF_ERROR(ops_.Embed(ids, t_.embedding, hidden.view()));
  ASSIGN_OR_RETURN(Buffer normed, Matrix(L_, d));  // (L, hidden): every block's norm, a GEMM's operand
  RETURN_IF_ERROR(Blocks(hidden.view(), normed.view()));
  if (ctx_.on_layer_done) RETURN_IF_ERROR(ReportProgress(/*wait=*/true));
  if (exchange_.has_value()) {  // to the end of this rank's last piece
    segments_[0].state->Advance(local_.back().begin + local_.back().len - segments_[0].position0);
  } else {
    for (const Segment& s : segments_) s.state->Advance(s.len);
  }

  std::vector<float> logits;
  if (rows != LogitsRows::kNone) {
    // Every row, or the last (one segment: a decode step of several runs RunDecodeStep).
    if (rows == LogitsRows::kLast && segments_.size() > 1) {
      return absl::InternalError("the last rows of segments longer than one row are not contiguous");
    }
    const int64_t out_rows = rows == LogitsRows::kAll ? L_ : 1;
    ASSIGN_OR_RETURN(Buffer device_logits, F32(out_rows, c_.vocab_size));  // (rows, vocab)
    RETURN_IF_ERROR(Logits(hidden.view().Rows(L_ - out_rows, out_rows), normed.view().Rows(0, out_rows),
                           device_logits.view()));
    logits.resize(out_rows * c_.vocab_size);
    RETURN_IF_ERROR(ops_.Download(device_logits.view(), logits.data()));
    if (c_.multipliers.logits_scaling != 1.0f) {  // granitemoehybrid divides the logits
      for (float& v : logits) v /= c_.multipliers.logits_scaling;
    }
  }
  RETURN_IF_ERROR(ops_.Finish());
  return logits;
}

absl::Status LayerLoop::EnqueueDecodeStep(const DecodeStepLayout& layout, const void* inputs, const Tensor& logits) {
  const int64_t d = c_.hidden_size;
  table_ = DecodeStepTable(layout, inputs);
  ASSIGN_OR_RETURN(Buffer hidden, F32(L_, d));  // (L, hidden): the residual stream
  EmbeddingParams embed;
  embed.num_tokens = L_;
  embed.vocab_size = t_.embedding.rows;
  embed.hidden = t_.embedding.cols;
  embed.ids = table_.ids;
  embed.ids_checked = true;  // MakeDecodeStepInputs checked them
  embed.table_type = t_.embedding.type;
  embed.table = t_.embedding.data;
  embed.out = hidden.f32();
  RETURN_IF_ERROR(ops_.Run(embed));
  ASSIGN_OR_RETURN(Buffer normed, Matrix(L_, d));  // (L, hidden): every block's norm, a GEMM's operand
  RETURN_IF_ERROR(Blocks(hidden.view(), normed.view()));
  if (logits.empty()) return absl::OkStatus();
  return Logits(hidden.view(), normed.view(), logits);
}

void LayerLoop::AdvanceDecodeStep(int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    ShardState& state = *segments_[i].state;
    for (KvCache& kv : state.attention) kv.tokens += 1;
    state.Advance(1);
  }
}

absl::StatusOr<std::vector<float>> LayerLoop::RunDecodeStep(absl::Span<const int32_t> ids, LogitsRows rows) {
  const DecodeStepLayout layout(c_, L_);
  std::vector<DecodeStepRow> step_rows;  // (L)
  for (const Segment& s : segments_) step_rows.push_back({s.state, ids[s.row0]});
  ASSIGN_OR_RETURN(const std::vector<uint64_t> host, MakeDecodeStepInputs(c_, layout, step_rows));
  ASSIGN_OR_RETURN(Buffer inputs, F32(1, 2 * layout.words()));  // the input block's words, as floats
  RETURN_IF_ERROR(ops_.Upload(host.data(), inputs.view()));
  Buffer device_logits;  // (L, vocab)
  if (rows != LogitsRows::kNone) {
    ASSIGN_OR_RETURN(device_logits, F32(L_, c_.vocab_size));
  }
  RETURN_IF_ERROR(EnqueueDecodeStep(layout, inputs.view().data, device_logits.view()));
  if (ctx_.on_layer_done) RETURN_IF_ERROR(ReportProgress(/*wait=*/true));
  std::vector<float> logits;
  if (rows != LogitsRows::kNone) {
    logits.resize(L_ * c_.vocab_size);
    RETURN_IF_ERROR(ops_.Download(device_logits.view(), logits.data()));
    if (c_.multipliers.logits_scaling != 1.0f) {  // granitemoehybrid divides the logits
      for (float& v : logits) v /= c_.multipliers.logits_scaling;
    }
  }
  RETURN_IF_ERROR(ops_.Finish());
  AdvanceDecodeStep(L_);
  return logits;
}

absl::StatusOr<std::vector<float>> LayerLoop::RunOnGraph(absl::Span<const int32_t> ids, DecodeGraphs::Bucket& bucket,
                                                         const Tensor& blas_workspace, int64_t real) {
  const DecodeStepLayout& layout = bucket.layout;
  if (layout.rows != L_ || !one_token_each_ || real > L_) {
    return absl::InternalError("a graph step needs one row a segment, as many as its bucket's");
  }
  decode_step_ = true;
  blas_workspace_ = blas_workspace;
  std::vector<DecodeStepRow> step_rows;  // (L)
  for (const Segment& s : segments_) step_rows.push_back({s.state, ids[s.row0]});
  ASSIGN_OR_RETURN(const std::vector<uint64_t> host, MakeDecodeStepInputs(c_, layout, step_rows));
  RETURN_IF_ERROR(ops_.Upload(host.data(), bucket.inputs.view()));
  const void* inputs = bucket.inputs.view().data;
  const Tensor logits = bucket.logits.view();
  if (bucket.graph == nullptr && (!bucket.warmed || !bucket.capture_failed.ok())) {
    // the same ops, run now: every kernel loaded before the capture (or the capture failed)
    RETURN_IF_ERROR(EnqueueDecodeStep(layout, inputs, logits));
    if (!bucket.warmed) bucket.scratch_bytes = ops_.scratch_high_water();  // this call's: at least the step's
    bucket.warmed = true;
  } else if (bucket.graph == nullptr) {
    const absl::Status captured = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(bucket.arena, backend_.Allocate(1, DecodeGraphs::ArenaBytes(bucket.scratch_bytes) / 4,
                                                       ElementType::kF32));  // (1, bytes / 4) as floats
      ASSIGN_OR_RETURN(bucket.graph,
                       ops_.Capture([&] { return EnqueueDecodeStep(layout, inputs, logits); }, bucket.arena.view()));
      return absl::OkStatus();
    }();
    if (!captured.ok()) {  // this bucket stays eager
      bucket.capture_failed = captured;
      bucket.graph = nullptr;
      bucket.arena = Buffer();
      RETURN_IF_ERROR(EnqueueDecodeStep(layout, inputs, logits));
    }
  }
  if (bucket.graph != nullptr) RETURN_IF_ERROR(ops_.Launch(*bucket.graph));
  std::vector<float> out(real * c_.vocab_size);  // (real, vocab)
  RETURN_IF_ERROR(ops_.Download(logits.Rows(0, real), out.data()));
  if (c_.multipliers.logits_scaling != 1.0f) {  // granitemoehybrid divides the logits
    for (float& v : out) v /= c_.multipliers.logits_scaling;
  }
  RETURN_IF_ERROR(ops_.Finish());
  AdvanceDecodeStep(real);
  return out;
}

}  // namespace

absl::StatusOr<std::vector<float>> Forward(Backend& backend, OpStream& ops, const ModelConfig& config,
                                           ShardState& state, absl::Span<const int32_t> ids, LogitsRows rows,
                                           const ShardContext& ctx) {
  Segment whole{&state, &ctx, 0, static_cast<int64_t>(ids.size()), state.num_tokens(), absl::OkStatus()};
  LayerLoop loop(backend, ops, config, absl::MakeSpan(&whole, 1), ctx, /*isolate_segment_failures=*/false);
  return loop.Run(ids, rows);
}

namespace {

const ShardContext kNoContext;

// Whether a decode step of `segments` runs on a graph: graphs on, a backend
// that captures them, a bucket for that many rows whose capture has not
// failed, and no row querying split-KV peers (their queries go through the
// host mid-pass).
bool OnGraph(const Backend& backend, const std::vector<Segment>& segments, const DecodeGraphs* graphs) {
  if (graphs == nullptr || !graphs->enabled() || backend.space() != BufferSpace::kDevice) return false;
  if (DecodeGraphs::BucketRows(static_cast<int64_t>(segments.size())) == 0) return false;
  return std::none_of(segments.begin(), segments.end(),
                      [](const Segment& s) { return s.ctx->queries_remote_kv(); });
}

// The step on its bucket's graph, padded to the bucket's rows with the
// padding state (decode_graphs.h).
absl::StatusOr<std::vector<float>> GraphStep(Backend& backend, OpStream& ops, const ModelConfig& config,
                                             const std::vector<Segment>& segments, absl::Span<const int32_t> ids,
                                             DecodeGraphs& graphs) {
  std::lock_guard<std::mutex> lock(graphs.mu());
  const int64_t real = static_cast<int64_t>(segments.size());
  ASSIGN_OR_RETURN(DecodeGraphs::Bucket* const bucket, graphs.GetBucket(backend, config, real));
  ASSIGN_OR_RETURN(ShardState* const padding, graphs.Padding(backend, config, ops));
  ASSIGN_OR_RETURN(const Tensor blas_workspace, graphs.BlasWorkspace(backend));
  std::vector<Segment> padded = segments;  // (bucket rows)
  std::vector<int32_t> padded_ids(ids.begin(), ids.end());
  for (int64_t r = real; r < bucket->layout.rows; ++r) {
    padded.push_back({padding, &kNoContext, r, 1, padding->num_tokens(), absl::OkStatus()});
    padded_ids.push_back(0);
  }
  LayerLoop loop(backend, ops, config, absl::MakeSpan(padded), kNoContext, /*isolate_segment_failures=*/true);
  return loop.RunOnGraph(padded_ids, *bucket, blas_workspace, real);
}

}  // namespace

// A row that cannot join (no Mamba states, K/V that cannot grow) is left out
// of the pass before anything of it runs; the others run as one pass.
absl::StatusOr<DecodeStepResult> DecodeStep(Backend& backend, OpStream& ops, const ModelConfig& config,
                                            absl::Span<const DecodeRow> rows, DecodeGraphs* graphs) {
  const int64_t vocab = config.vocab_size;
  for (size_t i = 0; i < rows.size(); ++i) {
    const DecodeRow& row = rows[i];
    if (row.state == nullptr) return absl::InvalidArgumentError(absl::StrCat("decode row ", i, " has no state"));
    if (row.ctx != nullptr && (row.ctx->sharded() || row.ctx->on_layer_done)) {
      return absl::InvalidArgumentError(absl::StrCat("decode row ", i, " has a prefill context"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (rows[j].state == row.state) {
        return absl::InvalidArgumentError(absl::StrCat("decode rows ", j, " and ", i, " hold the same state"));
      }
    }
  }
  DecodeStepResult result;
  result.status.assign(rows.size(), absl::OkStatus());
  std::vector<Segment> segments;  // (joined rows)
  std::vector<size_t> row_of;     // (joined rows): the index in `rows`
  std::vector<int32_t> ids;       // (joined rows)
  segments.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    ShardState& state = *rows[i].state;
    if (!state.has_mamba_states()) {
      result.status[i] = absl::FailedPreconditionError("this shard's Mamba states were dropped; it cannot decode");
      continue;
    }
    if (absl::Status grown = state.ReserveKv(ops, 1); !grown.ok()) {
      result.status[i] = std::move(grown);
      continue;
    }
    const ShardContext* ctx = rows[i].ctx != nullptr ? rows[i].ctx : &kNoContext;
    segments.push_back({&state, ctx, static_cast<int64_t>(segments.size()), 1, state.num_tokens(), absl::OkStatus()});
    row_of.push_back(i);
    ids.push_back(rows[i].token);
  }
  if (segments.empty()) {
    result.logits.assign(rows.size() * vocab, std::numeric_limits<float>::quiet_NaN());
    return result;
  }
  ASSIGN_OR_RETURN(std::vector<float> logits, OnGraph(backend, segments, graphs)
                                                   ? GraphStep(backend, ops, config, segments, ids, *graphs)
                                                   : LayerLoop(backend, ops, config, absl::MakeSpan(segments),
                                                               kNoContext, /*isolate_segment_failures=*/true)
                                                         .Run(ids, LogitsRows::kLast));
  for (size_t k = 0; k < segments.size(); ++k) result.status[row_of[k]] = std::move(segments[k].status);
  if (segments.size() == rows.size()) {  // every row joined: the pass's rows are the rows
    result.logits = std::move(logits);
    return result;
  }
  result.logits.assign(rows.size() * vocab, std::numeric_limits<float>::quiet_NaN());  // rows left out: NaN
  for (size_t k = 0; k < segments.size(); ++k) {
    std::copy_n(logits.begin() + k * vocab, vocab, result.logits.begin() + row_of[k] * vocab);
  }
  return result;
}

absl::StatusOr<AttentionPartial> AttendStoredKv(Backend& backend, OpStream& ops, const ModelConfig& config,
                                                const ShardState& state, int64_t attention_slot,
                                                absl::Span<const float> q, int64_t q_len, int64_t q_position0) {
  const AttentionConfig& a = config.attention;
  if (attention_slot < 0 || attention_slot >= static_cast<int64_t>(state.attention.size())) {
    return absl::InvalidArgumentError(absl::StrCat("no attention layer ", attention_slot));
  }
  const int64_t q_width = a.num_heads * a.head_dim;
  if (q_len <= 0 || static_cast<int64_t>(q.size()) != q_len * q_width) {
    return absl::InvalidArgumentError(absl::StrCat("query has ", q.size(), " floats, expected ", q_len, " x ", q_width));
  }
  const KvCache& kv = state.attention[attention_slot];
  ASSIGN_OR_RETURN(Buffer q_f32, ops.Scratch(q_len, q_width, ElementType::kF32));  // (q_len, Hq·D)
  RETURN_IF_ERROR(ops.Upload(q.data(), q_f32.view()));
  Buffer q_copy;  // (q_len, Hq·D) in the K/V type, when that is not fp32
  if (backend.matrix_type() != ElementType::kF32) {
    ASSIGN_OR_RETURN(q_copy, ops.Scratch(q_len, q_width, backend.matrix_type()));
    RETURN_IF_ERROR(ops.Run(layer_params::Copy(q_f32.view(), q_copy.view())));
  }
  const Tensor q_op = q_copy.view().empty() ? q_f32.view() : q_copy.view();
  ASSIGN_OR_RETURN(Buffer out, ops.Scratch(q_len, q_width, ElementType::kF32));     // (q_len, Hq·D)
  ASSIGN_OR_RETURN(Buffer lse, ops.Scratch(q_len, a.num_heads, ElementType::kF32));  // (q_len, Hq)
  RETURN_IF_ERROR(ops.Run(layer_params::Attention(a, q_op, q_position0, kv.keys(), kv.values(),
                                                  state.kv_begin(), out.view(), lse.view())));
  AttentionPartial part;
  part.out.resize(q.size());
  part.lse.resize(q_len * a.num_heads);
  RETURN_IF_ERROR(ops.Download(out.view(), part.out.data()));
  RETURN_IF_ERROR(ops.Download(lse.view(), part.lse.data()));
  return part;
}

}  // namespace tessera
