// In-process posts: a copy into the receiver's inbox of the shared mailbox.
#include "transport/in_process_transport.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tessera {

absl::Status InProcessTransport::Post(int to, uint64_t tag, std::string block) {
  if (to < 0 || to >= size_) return absl::InvalidArgumentError(absl::StrCat("no rank ", to, " of ", size_));
  return mailbox_->Put(Inbox(to), /*secret=*/"", tag, rank_, std::move(block));
}

absl::StatusOr<std::string> InProcessTransport::Take(int from, uint64_t tag) {
  if (from < 0 || from >= size_) return absl::InvalidArgumentError(absl::StrCat("no rank ", from, " of ", size_));
  return mailbox_->Take(Inbox(rank_), /*secret=*/"", tag, from, timeout_);
}

absl::StatusOr<std::vector<AttentionPartial>> InProcessTransport::QueryKv(int64_t attention_slot,
                                                                         absl::Span<const float> q, int64_t q_len,
                                                                         int64_t q_position0) {
  if (!answer_) return absl::FailedPreconditionError("this in-process group answers no split-KV queries");
  std::vector<AttentionPartial> parts;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    ASSIGN_OR_RETURN(AttentionPartial part, answer_(r, attention_slot, q, q_len, q_position0));
    parts.push_back(std::move(part));
  }
  return parts;
}

}  // namespace tessera
