// Collectives over point-to-point sends: correct on any transport whose Send
// does not block on the receiver; faster transports override them.
#include "worker/peer_group.h"

#include "common/status_macros.h"

namespace tessera {

absl::StatusOr<std::vector<std::vector<float>>> PeerGroup::AllGather(uint64_t tag, absl::Span<const float> mine) {
  for (int r = 0; r < size(); ++r) {
    if (r != rank()) RETURN_IF_ERROR(Send(r, tag, mine));
  }
  std::vector<std::vector<float>> all(size());
  for (int r = 0; r < size(); ++r) {
    if (r == rank()) {
      all[r].assign(mine.begin(), mine.end());
    } else {
      ASSIGN_OR_RETURN(all[r], Recv(r, tag));
    }
  }
  return all;
}

absl::StatusOr<std::vector<float>> PeerGroup::RingShift(uint64_t tag, absl::Span<const float> mine) {
  if (size() == 1) return std::vector<float>(mine.begin(), mine.end());
  RETURN_IF_ERROR(Send((rank() + 1) % size(), tag, mine));
  return Recv((rank() + size() - 1) % size(), tag);
}

}  // namespace tessera
