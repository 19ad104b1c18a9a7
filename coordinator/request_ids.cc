// getrandom(2) blocks only until the kernel's pool is first seeded (early
// boot); it is never short for 16 bytes, but a short or failed read is an
// error, never a weaker id.
#include "coordinator/request_ids.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tessera {
namespace {

constexpr size_t kRandomBytes = 16;

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string bytes(n, '\0');
  size_t filled = 0;
  while (filled < n) {
    const ssize_t got = getrandom(bytes.data() + filled, n - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("getrandom failed: ", std::strerror(errno)));
    }
    filled += static_cast<size_t>(got);
  }
  return bytes;
}

}  // namespace

absl::StatusOr<std::string> NewRequestId() {
  absl::StatusOr<std::string> bytes = RandomBytes(kRandomBytes);
  if (!bytes.ok()) return bytes.status();
  return absl::BytesToHexString(*bytes);
}

absl::StatusOr<std::string> NewRequestSecret() { return RandomBytes(kRandomBytes); }

}  // namespace tessera
