// The warning names what the model does past its trained length: RoPE
// positions it never saw, or (no positional encoding) nothing but attention
// over more tokens than in training.
#include "model/context_limit.h"

#include "absl/strings/str_cat.h"

namespace tessera {

absl::StatusOr<ContextLimit> ResolveContextLimit(const ModelConfig& config, int64_t requested) {
  if (requested < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--max-context-tokens must be >= 0. Given: ", requested));
  }
  ContextLimit limit;
  limit.trained_tokens = config.max_position_embeddings;
  limit.served_tokens = requested > 0 ? requested : config.max_position_embeddings;
  if (limit.trained_tokens > 0 && limit.served_tokens > limit.trained_tokens) {
    const bool rope = config.CountBlocks(BlockKind::kAttention) > 0 && config.attention.rotary_dim > 0;
    limit.warning = absl::StrCat(
        "serving up to ", limit.served_tokens, " tokens, beyond the ", limit.trained_tokens, " this ",
        config.model_type, " checkpoint states it was trained for (max_position_embeddings): ",
        rope ? "its RoPE attention will see positions it was not trained on"
             : "its attention has no positional encoding, so the math is defined at any length, but quality past "
               "the trained length is the checkpoint's, not Tessera's, to vouch for");
  }
  return limit;
}

}  // namespace tessera
