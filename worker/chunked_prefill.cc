// Each piece is one tessera::Forward call; Forward ends with its stream's
// Finish, which is the only synchronisation between pieces.
#include "worker/chunked_prefill.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tessera {

absl::StatusOr<int64_t> ChoosePrefillChunkTokens(int64_t requested, int64_t pass_limit_tokens,
                                                 int64_t ssd_chunk_tokens) {
  if (requested < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("must be >= 0 (0: sized from free memory). Given: ", requested));
  }
  if (pass_limit_tokens > 0 && requested > pass_limit_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("must be <= ", pass_limit_tokens,
                                                   " (the longest prefill pass the memory beside the K/V budget "
                                                   "holds). Given: ", requested));
  }
  if (requested > 0) return requested;
  const int64_t chunk = std::max<int64_t>(1, ssd_chunk_tokens);
  const int64_t longest = pass_limit_tokens > 0 ? std::min(pass_limit_tokens, kMaxDefaultPrefillChunkTokens)
                                                : kUnlimitedDefaultPrefillChunkTokens;
  if (longest < chunk) {
    return absl::InvalidArgumentError(absl::StrCat("has no default: one prefill pass holds ", pass_limit_tokens,
                                                   " tokens, less than one SSD chunk (", chunk, ")"));
  }
  return longest / chunk * chunk;
}

absl::StatusOr<std::vector<float>> ForwardInPieces(Backend& backend, const ModelConfig& config, ShardState& state,
                                                   absl::Span<const int32_t> ids, LogitsRows rows,
                                                   const ShardContext& ctx, int64_t piece_tokens,
                                                   const std::function<void()>& before_piece) {
  if (piece_tokens < 1) return absl::InternalError(absl::StrCat("prefill piece of ", piece_tokens, " tokens"));
  const int64_t total = static_cast<int64_t>(ids.size());
  std::vector<int64_t> ends;  // (pieces)
  for (int64_t end = piece_tokens; end < total; end += piece_tokens) ends.push_back(end);
  ends.push_back(total);
  return ForwardAtEnds(
      backend, config, state, ids, rows, ctx, ends, [](int64_t) { return absl::OkStatus(); }, before_piece);
}

namespace {

// Appends a pass's logits to the prefill's: every row with kAll, the last pass's with kLast.
void AppendPassLogits(LogitsRows rows, bool last, std::vector<float> pass_logits, std::vector<float>& logits) {
  if (rows == LogitsRows::kAll) {
    logits.insert(logits.end(), pass_logits.begin(), pass_logits.end());
  } else if (last) {
    logits = std::move(pass_logits);
  }
}

// `ctx` with its progress reported as pass `pass` of `passes`.
ShardContext PassContext(const ShardContext& ctx, int64_t pass, int64_t passes) {
  ShardContext pass_ctx = ctx;
  if (ctx.on_layer_done) {
    pass_ctx.on_layer_done = [&ctx, pass, passes](int64_t done, int64_t layers) {
      return ctx.on_layer_done(pass * layers + done, passes * layers);
    };
  }
  return pass_ctx;
}

}  // namespace

absl::StatusOr<std::vector<float>> ForwardInRounds(Backend& backend, const ModelConfig& config, ShardState& state,
                                                   absl::Span<const int32_t> ids, LogitsRows rows,
                                                   const ShardContext& ctx) {
  if (!ctx.sharded()) return absl::InternalError("a prefill in rounds needs a sharded context");
  const int rounds = ctx.rounds();
  const std::vector<int64_t> lens = RoundTokens(ctx.pieces, ctx.peers->rank());  // (rounds)
  std::vector<float> logits;  // (rows, vocab)
  if (rows == LogitsRows::kAll) logits.reserve(ids.size() * config.vocab_size);
  int64_t begin = 0;
  for (int k = 0; k < rounds; ++k) {
    if (begin + lens[k] > static_cast<int64_t>(ids.size())) {
      return absl::InternalError(absl::StrCat("round ", k, " passes the shard's ", ids.size(), " tokens"));
    }
    // Between rounds: progress so far, and a cancelled prefill stops here.
    if (k > 0 && ctx.on_layer_done) RETURN_IF_ERROR(ctx.on_layer_done(k * config.num_layers, rounds * config.num_layers));
    ShardContext round_ctx = PassContext(ctx, k, rounds);
    round_ctx.round = k;
    const bool last = k + 1 == rounds;
    const LogitsRows round_rows = rows == LogitsRows::kAll || last ? rows : LogitsRows::kNone;
    ASSIGN_OR_RETURN(std::unique_ptr<OpStream> ops, backend.NewStream());
    ASSIGN_OR_RETURN(std::vector<float> round_logits,
                     Forward(backend, *ops, config, state, ids.subspan(begin, lens[k]), round_rows, round_ctx));
    AppendPassLogits(rows, last, std::move(round_logits), logits);
    begin += lens[k];
  }
  return logits;
}

absl::StatusOr<std::vector<float>> ForwardAtEnds(Backend& backend, const ModelConfig& config, ShardState& state,
                                                 absl::Span<const int32_t> ids, LogitsRows rows,
                                                 const ShardContext& ctx, absl::Span<const int64_t> ends,
                                                 const std::function<absl::Status(int64_t end)>& after_piece,
                                                 const std::function<void()>& before_piece) {
  if (ctx.sharded()) return absl::InternalError("a shard of a context-parallel prefill runs in one pass");
  const int64_t total = static_cast<int64_t>(ids.size());
  if (ends.empty() || ends.back() != total) return absl::InternalError("prefill pieces must end at the last token");
  const int64_t pieces = static_cast<int64_t>(ends.size());
  std::vector<float> logits;  // (rows, vocab)
  if (rows == LogitsRows::kAll) logits.reserve(total * config.vocab_size);
  int64_t begin = 0;
  for (int64_t p = 0; p < pieces; ++p) {
    const ShardContext piece_ctx = PassContext(ctx, p, pieces);
    const int64_t end = ends[p];
    if (end <= begin) return absl::InternalError(absl::StrCat("prefill piece [", begin, ", ", end, ")"));
    const bool last = p + 1 == pieces;
    const LogitsRows piece_rows = rows == LogitsRows::kAll || last ? rows : LogitsRows::kNone;
    if (before_piece) before_piece();
    ASSIGN_OR_RETURN(std::unique_ptr<OpStream> ops, backend.NewStream());
    ASSIGN_OR_RETURN(std::vector<float> piece_logits,
                     Forward(backend, *ops, config, state, ids.subspan(begin, end - begin), piece_rows, piece_ctx));
    AppendPassLogits(rows, last, std::move(piece_logits), logits);
    if (!last) RETURN_IF_ERROR(after_piece(end));
    begin = end;
  }
  return logits;
}

}  // namespace tessera
