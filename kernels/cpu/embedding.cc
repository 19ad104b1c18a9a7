// Token embedding lookup. Ids come from users: all are checked before any row
// is written, so a bad request leaves the output untouched.
#include "kernels/embedding.h"

#include <cstring>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

constexpr absl::string_view kOp = "Embedding";

absl::Status ValidateEmbedding(const EmbeddingParams& p) {
  RETURN_IF_ERROR(CheckNonNegative(kOp, "num_tokens", p.num_tokens));
  RETURN_IF_ERROR(CheckPositive(kOp, "vocab_size", p.vocab_size));
  RETURN_IF_ERROR(CheckPositive(kOp, "hidden", p.hidden));
  if (p.num_tokens == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "ids", p.ids));
  RETURN_IF_ERROR(CheckNotNull(kOp, "table", p.table));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

absl::Status CheckTokenIds(const EmbeddingParams& p) {
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int32_t id = p.ids[t];
    if (id < 0 || id >= p.vocab_size) {
      return ParamError(kOp, absl::StrCat("token id ", id, " at position ", t,
                                          " is outside the vocabulary [0, ", p.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Embedding(const EmbeddingParams& p) {
  RETURN_IF_ERROR(ValidateEmbedding(p));
  RETURN_IF_ERROR(CheckTokenIds(p));
  const size_t row_bytes = static_cast<size_t>(p.hidden) * sizeof(float);
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    std::memcpy(p.out + t * p.hidden, p.table + static_cast<int64_t>(p.ids[t]) * p.hidden,
                row_bytes);
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
