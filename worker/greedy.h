// Greedy choice over logits, as torch.argmax does it: the first index of the
// largest value.
#pragma once

#include <cstdint>

#include "absl/types/span.h"

namespace tessera {

inline int32_t ArgmaxToken(absl::Span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

}  // namespace tessera
