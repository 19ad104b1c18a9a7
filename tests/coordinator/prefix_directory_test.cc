// The coordinator's prefix hints (coordinator/prefix_directory.h): the
// longest run of whole recorded blocks wins and always leaves the last token
// to run; salts never share; a forgotten worker or a full drop forgets its
// blocks; the bound forgets the least recently used first.
#include "coordinator/prefix_directory.h"

#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace tessera {
namespace {

std::vector<int32_t> Ids(int n, int first = 0) {
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

TEST(PrefixDirectoryTest, TheLongestRecordedRunOfWholeBlocksWins) {
  PrefixDirectory d;
  d.Record("", Ids(40), 8, "a:1");   // blocks 0-4
  d.Record("", Ids(70), 8, "b:1");   // blocks 0-7 (0-4 move to b)
  const PrefixHint hint = d.Longest("", Ids(100), 8);
  EXPECT_EQ(hint.address, "b:1");
  EXPECT_EQ(hint.tokens, 64);
  std::vector<int32_t> other = Ids(100);
  other[20] = -1;  // differs in block 2
  EXPECT_EQ(d.Longest("", other, 8).tokens, 16);
  // The last token always runs: 64 tokens reuse at most 56.
  EXPECT_EQ(d.Longest("", Ids(64), 8).tokens, 56);
  EXPECT_EQ(d.Longest("", Ids(7), 8).address, "");
}

TEST(PrefixDirectoryTest, SaltsNeverShare) {
  PrefixDirectory d;
  d.Record("tenant-a", Ids(40), 8, "a:1");
  EXPECT_EQ(d.Longest("tenant-b", Ids(40), 8).tokens, 0);
  EXPECT_EQ(d.Longest("", Ids(40), 8).tokens, 0);
  EXPECT_EQ(d.Longest("tenant-a", Ids(40), 8).tokens, 32);
}

TEST(PrefixDirectoryTest, ForgetsAWorkerOrEverything) {
  PrefixDirectory d;
  d.Record("", Ids(40), 8, "a:1");
  d.Record("", Ids(40, 1000), 8, "b:1");
  d.Forget("a:1");
  EXPECT_EQ(d.Longest("", Ids(40), 8).tokens, 0);
  EXPECT_EQ(d.Longest("", Ids(40, 1000), 8).address, "b:1");
  d.Forget("");
  EXPECT_EQ(d.size(), 0);
  EXPECT_EQ(d.Longest("", Ids(40, 1000), 8).tokens, 0);
}

TEST(PrefixDirectoryTest, TheBoundForgetsTheLeastRecentlyUsed) {
  PrefixDirectory d(/*max_blocks=*/6);
  d.Record("", Ids(24), 8, "a:1");         // 3 blocks
  d.Record("", Ids(24, 1000), 8, "b:1");   // 3 more: full
  EXPECT_EQ(d.Longest("", Ids(25), 8).tokens, 24);  // a's blocks are now the most recent
  d.Record("", Ids(16, 2000), 8, "c:1");   // 2 more: b's oldest go
  EXPECT_EQ(d.size(), 6);
  EXPECT_EQ(d.Longest("", Ids(25), 8).tokens, 24);
  EXPECT_EQ(d.Longest("", Ids(17, 2000), 8).tokens, 16);
  EXPECT_LT(d.Longest("", Ids(25, 1000), 8).tokens, 24);
}

TEST(PrefixDirectoryTest, AShardedPlanLeavesItsShardsUpToEachBlockEnd) {
  PrefixDirectory d;
  d.RecordSegments("", Ids(50), 8, {{"a:1", 0, 16}, {"b:1", 16, 32}, {"c:1", 32, 50}});
  const PrefixHint hint = d.Longest("", Ids(100), 8);
  EXPECT_EQ(hint.address, "");  // no one-shard worker
  ASSERT_EQ(hint.segments.size(), 2u);  // c's end (50) is not a block end
  EXPECT_EQ(hint.segments[0].address, "a:1");
  EXPECT_EQ(hint.segments[1].address, "b:1");
  EXPECT_EQ(hint.segments[1].end, 32);
  std::vector<int32_t> other = Ids(100);
  other[20] = -1;  // differs inside b's span: only a's is usable
  ASSERT_EQ(d.Longest("", other, 8).segments.size(), 1u);
  d.Forget("b:1");
  EXPECT_EQ(d.Longest("", Ids(100), 8).segments.size(), 1u);
}

}  // namespace
}  // namespace tessera
