// Each call makes its own stream: calls for different requests run
// concurrently on the backend's device.
#include "worker/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/chunked_prefill.h"

namespace tessera {

int64_t Engine::KvBytesPerToken() const {
  return tessera::KvBytesPerToken(config_, ElementBytes(backend_->matrix_type()));
}

int64_t Engine::StateBytesPerRequest() const { return tessera::StateBytesPerRequest(config_); }

absl::StatusOr<std::unique_ptr<ShardState>> Engine::NewState(int64_t begin, int64_t capacity_tokens) {
  return ShardState::Make(*backend_, config_, begin, capacity_tokens);
}

void Engine::set_prefill_budget_tokens(int64_t tokens) {
  const int64_t chunk = config_.mamba.chunk_size;
  prefill_budget_tokens_ = tokens <= 0 ? 0 : chunk > 0 ? std::max(chunk, tokens / chunk * chunk) : tokens;
}

Engine::PieceRule Engine::PiecesFor(const ShardContext& shard) const {
  if (shard.sharded()) return {0, false};
  if (prefill_budget_tokens_ > 0 && decode_turns_.DecodeActive()) {
    return {prefill_chunk_tokens_ > 0 ? std::min(prefill_chunk_tokens_, prefill_budget_tokens_) : prefill_budget_tokens_,
            true};
  }
  return {prefill_chunk_tokens_, false};
}

absl::StatusOr<std::vector<float>> Engine::Forward(ShardState& state, absl::Span<const int32_t> ids, LogitsRows rows,
                                                   const ShardContext& shard) {
  if (shard.sharded() && shard.rounds() > 1) return ForwardInRounds(*backend_, config_, state, ids, rows, shard);
  const PieceRule rule = PiecesFor(shard);
  if (rule.take_turns) {
    return ForwardInPieces(*backend_, config_, state, ids, rows, shard, rule.longest,
                           [this] { decode_turns_.WaitForRunningSteps(); });
  }
  if (rule.longest > 0 && static_cast<int64_t>(ids.size()) > rule.longest) {
    return ForwardInPieces(*backend_, config_, state, ids, rows, shard, rule.longest);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<OpStream> ops, backend_->NewStream());
  return tessera::Forward(*backend_, *ops, config_, state, ids, rows, shard);
}

absl::StatusOr<std::vector<float>> Engine::ForwardWithCuts(
    ShardState& state, absl::Span<const int32_t> ids, LogitsRows rows, const ShardContext& shard,
    absl::Span<const int64_t> cuts, const std::function<absl::Status(int64_t position)>& at_cut) {
  const int64_t begin = state.num_tokens();
  const int64_t total = static_cast<int64_t>(ids.size());
  std::vector<int64_t> ends;  // piece ends, relative to `begin`, ascending; the last is `total`
  int64_t from = 0;
  const PieceRule rule = PiecesFor(shard);
  const int64_t longest = rule.longest;
  auto add_until = [&](int64_t end) {  // pieces of at most `longest` up to `end`
    while (longest > 0 && end - from > longest) ends.push_back(from += longest);
    if (end > from) ends.push_back(from = end);
  };
  for (int64_t cut : cuts) {
    if (cut <= begin + from || cut >= begin + total) {
      return absl::InternalError(absl::StrCat("prefill cut at ", cut, " outside (", begin + from, ", ", begin + total, ")"));
    }
    add_until(cut - begin);
  }
  add_until(total);
  size_t next_cut = 0;
  auto after_piece = [&](int64_t end) -> absl::Status {
    if (next_cut < cuts.size() && begin + end == cuts[next_cut]) {
      ++next_cut;
      return at_cut(begin + end);
    }
    return absl::OkStatus();
  };
  std::function<void()> before_piece;
  if (rule.take_turns) before_piece = [this] { decode_turns_.WaitForRunningSteps(); };
  return ForwardAtEnds(*backend_, config_, state, ids, rows, shard, ends, after_piece, before_piece);
}

absl::Status Engine::AppendState(ShardState& to, const ShardState& from, int64_t position, int64_t rows,
                                 bool copy_mamba) {
  ASSIGN_OR_RETURN(std::unique_ptr<OpStream> ops, backend_->NewStream());
  return to.AppendFrom(*ops, from, position, rows, copy_mamba);
}

absl::StatusOr<DecodeStepResult> Engine::DecodeStep(absl::Span<const DecodeRow> rows) {
  DecodeTurns::Step turn(decode_turns_);
  ASSIGN_OR_RETURN(std::unique_ptr<OpStream> ops, backend_->NewLatencyStream());
  return tessera::DecodeStep(*backend_, *ops, config_, rows, &decode_graphs_);
}

absl::Status Engine::WarmUp(int64_t tokens) {
  if (tokens < 1) return absl::InvalidArgumentError(absl::StrCat("warm-up needs >= 1 token. Given: ", tokens));
  constexpr int kDecodeSteps = 3;  // the one-row graph is captured on its bucket's second step
  ASSIGN_OR_RETURN(std::unique_ptr<ShardState> state, NewState(0, tokens + kDecodeSteps));
  std::vector<int32_t> ids(tokens);  // (tokens): any ids of the vocabulary
  for (int64_t i = 0; i < tokens; ++i) ids[i] = static_cast<int32_t>(i % config_.vocab_size);
  RETURN_IF_ERROR(Forward(*state, ids, LogitsRows::kLast).status());
  for (int step = 0; step < kDecodeSteps; ++step) {
    const DecodeRow row{state.get(), static_cast<int32_t>(step % config_.vocab_size), nullptr};
    ASSIGN_OR_RETURN(const DecodeStepResult result, DecodeStep(absl::MakeConstSpan(&row, 1)));
    RETURN_IF_ERROR(result.status[0]);
  }
  return absl::OkStatus();
}

absl::StatusOr<AttentionPartial> Engine::AttendStoredKv(const ShardState& state, int64_t attention_slot,
                                                        absl::Span<const float> q, int64_t q_len,
                                                        int64_t q_position0) {
  ASSIGN_OR_RETURN(std::unique_ptr<OpStream> ops, backend_->NewLatencyStream());
  return tessera::AttendStoredKv(*backend_, *ops, config_, state, attention_slot, q, q_len, q_position0);
}

}  // namespace tessera
