// Embedding: rows copied exactly, and a bad token id rejected with its value,
// position and the vocabulary size, before any output row is written.
#include "kernels/embedding.h"

#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomFloats;

constexpr int64_t kVocab = 50;
constexpr int64_t kHidden = 7;

TEST(EmbeddingTest, CopiesTableRows) {
  std::mt19937 rng(1);
  const std::vector<float> table = RandomFloats(rng, kVocab * kHidden);
  const std::vector<int32_t> ids = {3, 0, 49, 3, 17};
  std::vector<float> out = NaNs(ids.size() * kHidden);
  const EmbeddingParams p{static_cast<int64_t>(ids.size()), kVocab, kHidden, ids.data(),
                          table.data(), out.data()};
  ASSERT_TRUE(cpu::Embedding(p).ok());
  for (size_t t = 0; t < ids.size(); ++t) {
    const std::vector<float> want(table.begin() + ids[t] * kHidden,
                                  table.begin() + (ids[t] + 1) * kHidden);
    const std::vector<float> got(out.begin() + t * kHidden, out.begin() + (t + 1) * kHidden);
    EXPECT_EQ(got, want) << "token " << t;
  }
}

TEST(EmbeddingTest, RejectsOutOfRangeIdNamingItsPosition) {
  std::mt19937 rng(2);
  const std::vector<float> table = RandomFloats(rng, kVocab * kHidden);
  std::vector<float> out(4 * kHidden, 7.0f);
  for (const std::vector<int32_t>& ids :
       {std::vector<int32_t>{1, 2, 50, 3}, std::vector<int32_t>{1, 2, -1, 3}}) {
    const EmbeddingParams p{4, kVocab, kHidden, ids.data(), table.data(), out.data()};
    const absl::Status status = cpu::Embedding(p);
    EXPECT_TRUE(IsInvalidArgumentMentioning(status, absl::StrCat("token id ", ids[2])));
    EXPECT_TRUE(IsInvalidArgumentMentioning(status, "position 2"));
    EXPECT_TRUE(IsInvalidArgumentMentioning(status, "50"));
    EXPECT_EQ(out, std::vector<float>(4 * kHidden, 7.0f)) << "output written before the check";
  }
}

TEST(EmbeddingTest, RejectsInvalidParams) {
  const std::vector<int32_t> ids = {0};
  std::vector<float> table(kVocab * kHidden), out(kHidden);
  EmbeddingParams p{1, kVocab, 0, ids.data(), table.data(), out.data()};
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Embedding(p), "hidden"));
  p = EmbeddingParams{1, kVocab, kHidden, nullptr, table.data(), out.data()};
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Embedding(p), "ids"));
}

}  // namespace
}  // namespace tessera
