// Scratch of a captured decode step (OpStream::Capture): blocks carved from
// one piece of device memory that lives as long as the graph, so the graph
// holds fixed addresses and allocates nothing when it replays. The layer
// loop frees scratch mostly in reverse order of taking it (each block's
// buffers go out of scope together), so a stack serves it: a block given back
// returns its space once every block taken after it is given back too, and
// the peak is what the same ops held at once when they ran eagerly
// (OpStream::scratch_high_water). Host bookkeeping only; not thread safe
// (one capture at a time, on one thread).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera::cuda_engine {

class ScratchArena {
 public:
  // Blocks start at multiples of kAlign bytes past `base`, as cudaMallocAsync's do.
  static constexpr int64_t kAlign = 256;
  static int64_t Rounded(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

  ScratchArena(void* base, int64_t bytes) : base_(static_cast<char*>(base)), size_(bytes) {}

  // `bytes` at the top of the stack; RESOURCE_EXHAUSTED past the end.
  absl::StatusOr<void*> Take(int64_t bytes);
  // Gives back a block Take returned (in any order).
  void Give(void* block);

 private:
  struct Block {
    int64_t begin = 0, end = 0;  // byte offsets
    bool given = false;
  };
  char* base_;
  int64_t size_;
  std::vector<Block> stack_;  // blocks held or waiting for those above them, bottom first
};

}  // namespace tessera::cuda_engine
