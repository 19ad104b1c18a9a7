// The CUDA backend's capture arena (worker/cuda/scratch_arena.h), host
// bookkeeping only (no device needed): blocks aligned and stacked, space
// back once every later block is given back (in any order), refusal past
// the end.
#include "worker/cuda/scratch_arena.h"

#include <vector>

#include "gtest/gtest.h"

namespace tessera::cuda_engine {
namespace {

TEST(ScratchArenaTest, StacksAlignedBlocksAndReusesGivenSpace) {
  std::vector<char> memory(4096);
  ScratchArena arena(memory.data(), 4096);
  absl::StatusOr<void*> a = arena.Take(100), b = arena.Take(300), c = arena.Take(10);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(static_cast<char*>(*a), memory.data());
  EXPECT_EQ(static_cast<char*>(*b), memory.data() + 256);
  EXPECT_EQ(static_cast<char*>(*c), memory.data() + 768);
  arena.Give(*b);  // under c: its space stays taken
  absl::StatusOr<void*> d = arena.Take(8);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(static_cast<char*>(*d), memory.data() + 1024);
  arena.Give(*d);
  arena.Give(*c);  // now b's space comes back too
  absl::StatusOr<void*> e = arena.Take(8);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(static_cast<char*>(*e), memory.data() + 256);
}

TEST(ScratchArenaTest, RefusesBlocksPastTheEnd) {
  std::vector<char> memory(1024);
  ScratchArena arena(memory.data(), 1024);
  ASSERT_TRUE(arena.Take(1000).ok());
  EXPECT_EQ(arena.Take(1).status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace tessera::cuda_engine
