// Token embedding lookup. Ids come from users: all are checked before any row
// is written, so a bad request leaves the output untouched. An fp32 table is
// copied row by row; a bf16 table is widened exactly, element by element.
#include "kernels/embedding.h"

#include <cstring>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {

absl::Status Embedding(const EmbeddingParams& p) {
  RETURN_IF_ERROR(CheckEmbeddingParams(p));
  RETURN_IF_ERROR(CheckEmbeddingTokenIds(p.ids, p.num_tokens, p.vocab_size));
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int64_t row = static_cast<int64_t>(p.ids[t]) * p.hidden;
    float* out = p.out + t * p.hidden;  // (hidden)
    switch (p.table_type) {
      case ElementType::kF32:
        std::memcpy(out, static_cast<const float*>(p.table) + row,
                    static_cast<size_t>(p.hidden) * sizeof(float));
        break;
      case ElementType::kBF16: {
        const uint16_t* in = static_cast<const uint16_t*>(p.table) + row;  // (hidden) bf16 bits
        for (int64_t c = 0; c < p.hidden; ++c) out[c] = Bf16BitsToFloat(in[c]);
        break;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
