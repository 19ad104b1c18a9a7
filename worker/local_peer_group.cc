// In-process sends: a copy into the receiver's inbox.
#include "worker/local_peer_group.h"

#include "absl/strings/str_cat.h"

namespace tessera {

absl::Status LocalPeerGroup::Send(int to, uint64_t tag, absl::Span<const float> data) {
  if (to < 0 || to >= size_) return absl::InvalidArgumentError(absl::StrCat("no rank ", to, " of ", size_));
  mailbox_->Put(Inbox(to), tag, rank_, std::vector<float>(data.begin(), data.end()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> LocalPeerGroup::Recv(int from, uint64_t tag) {
  if (from < 0 || from >= size_) return absl::InvalidArgumentError(absl::StrCat("no rank ", from, " of ", size_));
  return mailbox_->Take(Inbox(rank_), tag, from, timeout_);
}

}  // namespace tessera
