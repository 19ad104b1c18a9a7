// A block of the wrong size means the ranks disagree on the shard plan or on
// the order of exchanges: INTERNAL, never a silent truncation.
#include "transport/mailbox_transport.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tessera {
namespace {

absl::Status CheckSize(const std::string& block, size_t expected, int from, uint64_t tag) {
  if (block.size() == expected) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("block from shard ", from, " (tag ", tag, ") has ", block.size(),
                                          " bytes, expected ", expected));
}

}  // namespace

absl::Status MailboxTransport::AllGather(uint64_t tag, const void* mine, size_t bytes, void* all, CudaStream) {
  const std::string block(static_cast<const char*>(mine), bytes);
  for (int r = 0; r < size(); ++r) {
    if (r != rank()) RETURN_IF_ERROR(Post(r, tag, block));
  }
  char* out = static_cast<char*>(all);
  for (int r = 0; r < size(); ++r) {
    if (r == rank()) {
      if (bytes > 0) std::memcpy(out + r * bytes, mine, bytes);
      continue;
    }
    ASSIGN_OR_RETURN(std::string received, Take(r, tag));
    RETURN_IF_ERROR(CheckSize(received, bytes, r, tag));
    if (bytes > 0) std::memcpy(out + r * bytes, received.data(), bytes);
  }
  return absl::OkStatus();
}

absl::Status MailboxTransport::RingShift(uint64_t tag, const void* send, size_t send_bytes, void* recv,
                                         size_t recv_bytes, CudaStream) {
  if (size() == 1) {
    if (send_bytes != recv_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("RingShift on one rank sends ", send_bytes, " bytes to itself but "
                                                     "expects ", recv_bytes));
    }
    if (send_bytes > 0) std::memcpy(recv, send, send_bytes);
    return absl::OkStatus();
  }
  const int next = (rank() + 1) % size();
  const int previous = (rank() + size() - 1) % size();
  RETURN_IF_ERROR(Post(next, tag, std::string(static_cast<const char*>(send), send_bytes)));
  ASSIGN_OR_RETURN(std::string received, Take(previous, tag));
  RETURN_IF_ERROR(CheckSize(received, recv_bytes, previous, tag));
  if (recv_bytes > 0) std::memcpy(recv, received.data(), recv_bytes);
  return absl::OkStatus();
}

}  // namespace tessera
