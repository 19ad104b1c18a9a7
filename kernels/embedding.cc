// The checks of the Embedding contract (kernels/embedding.h), one copy that
// every backend runs before it touches memory, so a bad request gets the same
// INVALID_ARGUMENT message whichever backend runs it. The token-id check reads
// host memory: the CPU reference hands it the ids, CUDA a copy of them.
#include "kernels/embedding.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckElementType;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::ParamError;

absl::Status CheckEmbeddingParams(const EmbeddingParams& p) {
  constexpr absl::string_view kOp = "Embedding";
  RETURN_IF_ERROR(CheckElementType(kOp, "table_type", p.table_type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "num_tokens", p.num_tokens));
  RETURN_IF_ERROR(CheckPositive(kOp, "vocab_size", p.vocab_size));
  RETURN_IF_ERROR(CheckPositive(kOp, "hidden", p.hidden));
  if (p.num_tokens == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "ids", p.ids));
  RETURN_IF_ERROR(CheckNotNull(kOp, "table", p.table));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

absl::Status CheckEmbeddingTokenIds(const int32_t* ids, int64_t num_tokens, int64_t vocab_size) {
  constexpr absl::string_view kOp = "Embedding";
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int32_t id = ids[t];
    if (id < 0 || id >= vocab_size) {
      return ParamError(kOp, absl::StrCat("token id ", id, " at position ", t,
                                          " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera
