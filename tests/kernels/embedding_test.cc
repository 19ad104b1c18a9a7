// Embedding: rows copied exactly from an fp32 table and widened exactly from a
// bf16 one, and a bad token id rejected with its value, position and the
// vocabulary size, before any output row is written.
#include "kernels/embedding.h"

#include <cstdint>
#include <cstring>
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

EmbeddingParams Params(int64_t tokens, int64_t hidden, const int32_t* ids, ElementType table_type,
                       const void* table, float* out) {
  EmbeddingParams p;
  p.num_tokens = tokens;
  p.vocab_size = kVocab;
  p.hidden = hidden;
  p.ids = ids;
  p.table_type = table_type;
  p.table = table;
  p.out = out;
  return p;
}

TEST(EmbeddingTest, CopiesTableRows) {
  std::mt19937 rng(1);
  const std::vector<float> table = RandomFloats(rng, kVocab * kHidden);
  const std::vector<int32_t> ids = {3, 0, 49, 3, 17};
  std::vector<float> out = NaNs(ids.size() * kHidden);
  const EmbeddingParams p = Params(static_cast<int64_t>(ids.size()), kHidden, ids.data(),
                                   ElementType::kF32, table.data(), out.data());
  ASSERT_TRUE(cpu::Embedding(p).ok());
  for (size_t t = 0; t < ids.size(); ++t) {
    const std::vector<float> want(table.begin() + ids[t] * kHidden,
                                  table.begin() + (ids[t] + 1) * kHidden);
    const std::vector<float> got(out.begin() + t * kHidden, out.begin() + (t + 1) * kHidden);
    EXPECT_EQ(got, want) << "token " << t;
  }
}

// A bf16 table (random bit patterns of finite values, both signs, subnormals
// included) widens exactly: out's bits are the table's bits followed by 16 zeros.
TEST(EmbeddingTest, WidensBf16TableRowsExactly) {
  std::mt19937 rng(3);
  for (const int64_t hidden : {int64_t{1}, kHidden, int64_t{257}}) {
    SCOPED_TRACE(absl::StrCat("hidden ", hidden));
    std::uniform_int_distribution<uint32_t> bits(0, 0xFFFF);
    std::vector<uint16_t> table(kVocab * hidden);  // (vocab, hidden) bf16 bits
    for (uint16_t& b : table) {
      do b = static_cast<uint16_t>(bits(rng));
      while ((b & 0x7F80u) == 0x7F80u);  // no inf/NaN: compare values, not payloads
    }
    const std::vector<int32_t> ids = {49, 0, 7, 7, 31, 2};
    std::vector<float> out = NaNs(ids.size() * hidden);
    ASSERT_TRUE(cpu::Embedding(Params(static_cast<int64_t>(ids.size()), hidden, ids.data(),
                                      ElementType::kBF16, table.data(), out.data()))
                    .ok());
    for (size_t t = 0; t < ids.size(); ++t) {
      for (int64_t c = 0; c < hidden; ++c) {
        uint32_t got;
        std::memcpy(&got, &out[t * hidden + c], sizeof(got));
        ASSERT_EQ(got, static_cast<uint32_t>(table[ids[t] * hidden + c]) << 16)
            << "token " << t << " column " << c;
      }
    }
  }
}

TEST(EmbeddingTest, RejectsOutOfRangeIdNamingItsPosition) {
  std::mt19937 rng(2);
  const std::vector<float> table = RandomFloats(rng, kVocab * kHidden);
  const std::vector<uint16_t> bf16_table(kVocab * kHidden, 0x3F80);  // 1.0
  std::vector<float> out(4 * kHidden, 7.0f);
  for (const std::vector<int32_t>& ids :
       {std::vector<int32_t>{1, 2, 50, 3}, std::vector<int32_t>{1, 2, -1, 3}}) {
    for (const ElementType type : {ElementType::kF32, ElementType::kBF16}) {
      const void* typed = type == ElementType::kF32 ? static_cast<const void*>(table.data())
                                                    : bf16_table.data();
      const absl::Status status =
          cpu::Embedding(Params(4, kHidden, ids.data(), type, typed, out.data()));
      EXPECT_TRUE(IsInvalidArgumentMentioning(status, absl::StrCat("token id ", ids[2])));
      EXPECT_TRUE(IsInvalidArgumentMentioning(status, "position 2"));
      EXPECT_TRUE(IsInvalidArgumentMentioning(status, "50"));
      EXPECT_EQ(out, std::vector<float>(4 * kHidden, 7.0f)) << "output written before the check";
    }
  }
}

TEST(EmbeddingTest, RejectsInvalidParams) {
  const std::vector<int32_t> ids = {0};
  std::vector<float> table(kVocab * kHidden), out(kHidden);
  EmbeddingParams p = Params(1, 0, ids.data(), ElementType::kF32, table.data(), out.data());
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Embedding(p), "hidden"));
  p = Params(1, kHidden, nullptr, ElementType::kF32, table.data(), out.data());
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Embedding(p), "ids"));
  p = Params(1, kHidden, ids.data(), ElementType::kBF16, nullptr, out.data());
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Embedding(p), "table must not be null"));
  p = Params(1, kHidden, ids.data(), static_cast<ElementType>(7), table.data(), out.data());
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cpu::Embedding(p), "Embedding: table_type must be kF32 or kBF16. Given: 7"));
}

}  // namespace
}  // namespace tessera
