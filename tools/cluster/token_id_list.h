// Token ids as people write them on a command line or in a file: integers
// separated by commas and/or whitespace, optionally as a JSON array
// ("1,2,3", "1 2 3", "[1, 2, 3]", one per line). Strict about the rest, so a
// typo is an error that says where rather than a silently different prompt.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tessera {

// Ids in [0, 2^31 - 1]. Empty (or "[]") input gives an empty list. Errors are
// INVALID_ARGUMENT and name the byte offset and what was found there.
absl::StatusOr<std::vector<int32_t>> ParseTokenIdList(absl::string_view text);

}  // namespace tessera
