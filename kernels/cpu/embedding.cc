// Token embedding lookup. Ids come from users: all are checked before any row
// is written, so a bad request leaves the output untouched.
#include "kernels/embedding.h"

#include <cstring>

#include "common/status_macros.h"
#include "kernels/params_check.h"

namespace tessera::cpu {

absl::Status Embedding(const EmbeddingParams& p) {
  RETURN_IF_ERROR(CheckEmbeddingParams(p));
  RETURN_IF_ERROR(CheckEmbeddingTokenIds(p.ids, p.num_tokens, p.vocab_size));
  const size_t row_bytes = static_cast<size_t>(p.hidden) * sizeof(float);
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    std::memcpy(p.out + t * p.hidden, p.table + static_cast<int64_t>(p.ids[t]) * p.hidden,
                row_bytes);
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
