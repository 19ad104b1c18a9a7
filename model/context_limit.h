// The context a deployment serves, one rule for the coordinator and the
// workers: the operator's --max-context-tokens when given, else the context
// the checkpoint states it was trained for (max_position_embeddings), else no
// limit. Raising it past the trained length is allowed (long documents are
// what Tessera is for; Nemotron-H's attention has no positional encoding at
// all) and comes with a warning saying what is being extrapolated.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "model/model_config.h"

namespace tessera {

struct ContextLimit {
  int64_t served_tokens = 0;   // prompt + generation limit; 0: none
  int64_t trained_tokens = 0;  // the checkpoint's max_position_embeddings; 0: not stated
  std::string warning;         // non-empty when served_tokens exceeds trained_tokens
};

// `requested`: --max-context-tokens, 0 when not given. INVALID_ARGUMENT for a
// negative value.
absl::StatusOr<ContextLimit> ResolveContextLimit(const ModelConfig& config, int64_t requested);

}  // namespace tessera
