#include "worker/cuda/scratch_arena.h"

#include "absl/strings/str_cat.h"

namespace tessera::cuda_engine {

absl::StatusOr<void*> ScratchArena::Take(int64_t bytes) {
  const int64_t begin = stack_.empty() ? 0 : Rounded(stack_.back().end);
  const int64_t end = begin + bytes;
  if (end > size_) {
    return absl::ResourceExhaustedError(absl::StrCat("graph scratch arena: ", bytes, " bytes at offset ", begin,
                                                     " pass its ", size_, " bytes"));
  }
  stack_.push_back({begin, end, false});
  return base_ + begin;
}

void ScratchArena::Give(void* block) {
  const int64_t begin = static_cast<char*>(block) - base_;
  for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
    if (it->begin == begin && !it->given) {
      it->given = true;
      break;
    }
  }
  while (!stack_.empty() && stack_.back().given) stack_.pop_back();
}

}  // namespace tessera::cuda_engine
