// A block of the wrong size means the ranks disagree on the shard plan or on
// the order of exchanges: INTERNAL, never a silent truncation.
#include "transport/mailbox_transport.h"

#include <algorithm>
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

// How many pieces of at most `piece` bytes a block of `bytes` travels in (one for an empty block).
size_t Pieces(size_t bytes, size_t piece) { return bytes == 0 ? 1 : (bytes + piece - 1) / piece; }

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
  const size_t piece = ring_piece_bytes_;
  const size_t send_pieces = Pieces(send_bytes, piece), recv_pieces = Pieces(recv_bytes, piece);
  if (std::max(send_pieces, recv_pieces) > kMaxTagPieces) {
    return absl::InvalidArgumentError(absl::StrCat("a ring block of ", std::max(send_bytes, recv_bytes),
                                                   " bytes is more than ", kMaxTagPieces, " pieces of ", piece));
  }
  const char* out = static_cast<const char*>(send);
  for (size_t i = 0; i < send_pieces; ++i) {
    const size_t begin = i * piece, len = std::min(piece, send_bytes - std::min(send_bytes, begin));
    RETURN_IF_ERROR(Post(next, PieceTag(tag, i), std::string(out + begin, len)));
  }
  char* in = static_cast<char*>(recv);
  for (size_t i = 0; i < recv_pieces; ++i) {
    const size_t begin = i * piece, len = std::min(piece, recv_bytes - std::min(recv_bytes, begin));
    ASSIGN_OR_RETURN(std::string received, Take(previous, PieceTag(tag, i)));
    RETURN_IF_ERROR(CheckSize(received, len, previous, PieceTag(tag, i)));
    if (len > 0) std::memcpy(in + begin, received.data(), len);
  }
  return absl::OkStatus();
}

}  // namespace tessera
