// Request ids and secrets drawn from the kernel's CSPRNG (getrandom(2)).
// Workers key a request's state by its id, and its peers prove they belong
// to it with its secret: an id must never repeat (across coordinator
// restarts too) nor be guessable from another, and a secret must be
// unguessable even to whoever learns the id (logs show ids, never secrets).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace tessera {

// 128 random bits as 32 lowercase hex digits.
absl::StatusOr<std::string> NewRequestId();

// 128 random bits as 16 raw bytes (RunShardRequest.request_secret).
absl::StatusOr<std::string> NewRequestSecret();

}  // namespace tessera
