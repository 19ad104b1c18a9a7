// DecodeAttention, a batch of one-row decode queries over per-request K/V:
// against the formula in double; each request bit for bit what cpu::Attention
// gives its row at the cache's last position (causal, q_len 1), so a batch
// changes no request's answer; a prefix length standing for a causal limit;
// kv_len 0 (out 0, lse -inf); a request's keys cut into two batch entries
// merged by AttentionMerge equal to the whole (the lse is right); the checks.
#include "kernels/decode_attention.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/attention.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;
using kernel_test::SameBits;

constexpr double kDecodeAttentionTolerance = 1e-5;

// A batch whose requests' K/V live in separate allocations with padded rows.
struct Batch {
  int64_t heads = 0, kv_heads = 0, dim = 0, q_stride = 0, kv_stride = 0;
  std::vector<int32_t> lens;
  std::vector<float> q;                   // (batch, q_stride) holding (Hq, D)
  std::vector<std::vector<float>> k, v;   // batch × (len, kv_stride) holding (len, Hkv, D)
  std::vector<const void*> k_ptrs, v_ptrs;
  int64_t batch() const { return static_cast<int64_t>(lens.size()); }
};

Batch MakeBatch(std::vector<int32_t> lens, int64_t heads, int64_t kv_heads, int64_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  Batch b;
  b.heads = heads;
  b.kv_heads = kv_heads;
  b.dim = dim;
  b.q_stride = heads * dim + 3;
  b.kv_stride = kv_heads * dim + 5;
  b.lens = lens;
  b.q = RandomRows(rng, b.batch(), heads * dim, b.q_stride, -2.0f, 2.0f);
  for (int32_t len : lens) {
    b.k.push_back(RandomRows(rng, len, kv_heads * dim, b.kv_stride, -2.0f, 2.0f));
    b.v.push_back(RandomRows(rng, len, kv_heads * dim, b.kv_stride));
  }
  for (int64_t r = 0; r < b.batch(); ++r) {
    b.k_ptrs.push_back(lens[r] > 0 ? b.k[r].data() : nullptr);
    b.v_ptrs.push_back(lens[r] > 0 ? b.v[r].data() : nullptr);
  }
  return b;
}

DecodeAttentionParams Params(const Batch& b, float* out, float* lse) {
  DecodeAttentionParams p;
  p.batch = b.batch();
  p.num_q_heads = b.heads;
  p.num_kv_heads = b.kv_heads;
  p.head_dim = b.dim;
  p.q = b.q.data();
  p.q_stride = b.q_stride;
  p.k = b.k_ptrs.data();
  p.k_stride = b.kv_stride;
  p.v = b.v_ptrs.data();
  p.v_stride = b.kv_stride;
  p.kv_lens = b.lens.data();
  p.scale = 1.0f / std::sqrt(static_cast<float>(b.dim));
  p.out = out;
  p.lse = lse;
  return p;
}

TEST(DecodeAttentionTest, MatchesTheFormula) {
  const Batch b = MakeBatch({7, 1, 30, 12}, 6, 2, 8, 1);
  const int64_t rows = b.batch() * b.heads;
  std::vector<float> out = NaNs(rows * b.dim), lse = NaNs(rows);
  const DecodeAttentionParams p = Params(b, out.data(), lse.data());
  ASSERT_TRUE(cpu::DecodeAttention(p).ok());
  std::vector<double> want_out(rows * b.dim), want_lse(rows);
  for (int64_t r = 0; r < b.batch(); ++r) {
    for (int64_t h = 0; h < b.heads; ++h) {
      const int64_t kvh = h / (b.heads / b.kv_heads);
      const float* q = b.q.data() + r * b.q_stride + h * b.dim;
      std::vector<double> scores(b.lens[r]);
      double max = -INFINITY;
      for (int32_t j = 0; j < b.lens[r]; ++j) {
        double dot = 0.0;
        for (int64_t d = 0; d < b.dim; ++d) dot += double{q[d]} * b.k[r][j * b.kv_stride + kvh * b.dim + d];
        scores[j] = dot * p.scale;
        max = std::max(max, scores[j]);
      }
      double sum = 0.0;
      for (int32_t j = 0; j < b.lens[r]; ++j) sum += std::exp(scores[j] - max);
      for (int64_t d = 0; d < b.dim; ++d) {
        double acc = 0.0;
        for (int32_t j = 0; j < b.lens[r]; ++j) {
          acc += std::exp(scores[j] - max) / sum * b.v[r][j * b.kv_stride + kvh * b.dim + d];
        }
        want_out[(r * b.heads + h) * b.dim + d] = acc;
      }
      want_lse[r * b.heads + h] = max + std::log(sum);
    }
  }
  EXPECT_TRUE(CloseInRelativeL2(out, want_out, kDecodeAttentionTolerance));
  EXPECT_TRUE(CloseInRelativeL2(lse, want_lse, kDecodeAttentionTolerance));
}

TEST(DecodeAttentionTest, BatchGivesEachRequestItsOwnCausalAttentionExactly) {
  const Batch b = MakeBatch({5, 0, 17, 1, 40}, 8, 2, 16, 2);
  const int64_t rows = b.batch() * b.heads;
  std::vector<float> out = NaNs(rows * b.dim), lse = NaNs(rows);
  ASSERT_TRUE(cpu::DecodeAttention(Params(b, out.data(), lse.data())).ok());
  for (int64_t r = 0; r < b.batch(); ++r) {
    SCOPED_TRACE(r);
    std::vector<float> want_out = NaNs(b.heads * b.dim), want_lse = NaNs(b.heads);
    AttentionParams one;
    one.q_len = 1;
    one.kv_len = b.lens[r];
    one.num_q_heads = b.heads;
    one.num_kv_heads = b.kv_heads;
    one.head_dim = b.dim;
    one.q = b.q.data() + r * b.q_stride;
    one.k = b.k_ptrs[r];
    one.k_stride = b.kv_stride;
    one.v = b.v_ptrs[r];
    one.v_stride = b.kv_stride;
    one.q_position0 = 1000 + b.lens[r] - 1;  // the newest token: it sees its whole cache
    one.kv_position0 = 1000;
    one.causal = true;
    one.scale = 1.0f / std::sqrt(static_cast<float>(b.dim));
    one.out = want_out.data();
    one.lse = want_lse.data();
    ASSERT_TRUE(cpu::Attention(one).ok());
    EXPECT_TRUE(SameBits(std::vector<float>(out.begin() + r * b.heads * b.dim, out.begin() + (r + 1) * b.heads * b.dim),
                         want_out));
    EXPECT_TRUE(SameBits(std::vector<float>(lse.begin() + r * b.heads, lse.begin() + (r + 1) * b.heads), want_lse));
    if (b.lens[r] == 0) {
      EXPECT_EQ(want_lse, std::vector<float>(b.heads, -INFINITY));
      EXPECT_EQ(want_out, std::vector<float>(b.heads * b.dim, 0.0f));
    }
  }
}

// A query that may see only keys up to its position is the same call with
// the shorter length: what cpu::Attention's causal mask gives.
TEST(DecodeAttentionTest, APrefixLengthIsTheCausalLimit) {
  Batch b = MakeBatch({20}, 4, 4, 8, 3);
  const int64_t kv_position0 = 50, q_position = 58;  // sees keys 0..8
  std::vector<float> want(b.heads * b.dim), got = NaNs(b.heads * b.dim);
  AttentionParams causal{1, 20, b.heads, b.kv_heads, b.dim, ElementType::kF32, b.q.data(), b.q_stride,
                         b.k[0].data(), b.kv_stride, b.v[0].data(), b.kv_stride, q_position, kv_position0,
                         true, 1.0f / std::sqrt(8.0f), want.data(), nullptr};
  ASSERT_TRUE(cpu::Attention(causal).ok());
  b.lens[0] = static_cast<int32_t>(q_position - kv_position0 + 1);
  ASSERT_TRUE(cpu::DecodeAttention(Params(b, got.data(), nullptr)).ok());
  EXPECT_TRUE(SameBits(got, want));
}

// Request 0's keys as two batch entries (the halves), merged by the lse rule,
// give request 0's answer: the rows are normalised and the lses right.
TEST(DecodeAttentionTest, TwoHalvesMergeIntoTheWhole) {
  Batch b = MakeBatch({33, 0}, 4, 2, 8, 4);
  const int64_t width = b.heads * b.dim;
  std::vector<float> whole = NaNs(2 * width), whole_lse = NaNs(2 * b.heads);
  ASSERT_TRUE(cpu::DecodeAttention(Params(b, whole.data(), whole_lse.data())).ok());
  std::copy(b.q.begin(), b.q.begin() + b.q_stride, b.q.begin() + b.q_stride);  // the same query twice
  b.lens = {13, 20};
  b.k_ptrs[1] = b.k[0].data() + 13 * b.kv_stride;
  b.v_ptrs[1] = b.v[0].data() + 13 * b.kv_stride;
  std::vector<float> halves = NaNs(2 * width), halves_lse = NaNs(2 * b.heads);
  ASSERT_TRUE(cpu::DecodeAttention(Params(b, halves.data(), halves_lse.data())).ok());
  AttentionMergeParams merge{b.heads, b.dim, halves.data(), halves_lse.data(), halves.data() + width,
                             halves_lse.data() + b.heads};
  ASSERT_TRUE(cpu::AttentionMerge(merge).ok());
  EXPECT_TRUE(CloseInRelativeL2(std::vector<float>(halves.begin(), halves.begin() + width),
                                std::vector<float>(whole.begin(), whole.begin() + width), kDecodeAttentionTolerance));
  EXPECT_TRUE(CloseInRelativeL2(std::vector<float>(halves_lse.begin(), halves_lse.begin() + b.heads),
                                std::vector<float>(whole_lse.begin(), whole_lse.begin() + b.heads),
                                kDecodeAttentionTolerance));
}

TEST(DecodeAttentionTest, RejectsInvalidParams) {
  Batch b = MakeBatch({4, 6}, 4, 2, 8, 5);
  std::vector<float> out(2 * 4 * 8), lse(2 * 4);
  const DecodeAttentionParams valid = Params(b, out.data(), lse.data());
  ASSERT_TRUE(cpu::DecodeAttention(valid).ok());
  DecodeAttentionParams p = valid;
  p.num_kv_heads = 3;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DecodeAttention(p), "num_kv_heads (3) must divide num_q_heads (4)"));
  p = valid;
  p.batch = -2;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DecodeAttention(p), "batch must be >= 0. Given: -2"));
  p = valid;
  p.k_stride = 5;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DecodeAttention(p), "k_stride must be 0 or >= 16. Given: 5"));
  p = valid;
  p.q_stride = 31;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DecodeAttention(p), "q_stride"));
  p = valid;
  p.scale = 0.0f;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DecodeAttention(p), "scale"));
  p = valid;
  p.kv_lens = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DecodeAttention(p), "kv_lens"));
  p = valid;
  p.v = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DecodeAttention(p), "v must not be null"));
  p = valid;
  b.lens[1] = -1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DecodeAttention(p), "kv_lens[1] must be >= 0. Given: -1"));
  b.lens[1] = 6;
  b.k_ptrs[0] = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::DecodeAttention(p), "k[0]"));
  b.k_ptrs[0] = b.k[0].data();
  p.type = ElementType::kBF16;
  EXPECT_EQ(cpu::DecodeAttention(p).code(), absl::StatusCode::kUnimplemented);
  p = valid;
  p.batch = 0;
  p.q = nullptr;
  EXPECT_TRUE(cpu::DecodeAttention(p).ok());
}

}  // namespace
}  // namespace tessera
