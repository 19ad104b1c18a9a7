// Attention against a naive softmax in double (GQA, causal by global position,
// strides of a fused QKV buffer), and AttentionMerge against attention over the
// union of key blocks: the ring-prefill and split-KV decode identity. (The
// CUDA split-KV kernels are tested against this reference in
// tests/kernels_gpu/attention_gpu_test.cc.)
#include "kernels/attention.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomRows;

constexpr double kAttentionTolerance = 1e-5;  // out and lse, relative L2
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct AttentionShape {
  int64_t q_len, kv_len, q_heads, kv_heads, head_dim;
  int64_t q_position0, kv_position0;
  bool causal;
};

// Q, K and V inside one fused row per token, (T, [Hq·D | Hkv·D | Hkv·D]), as a
// fused projection leaves them; queries and keys may be different tokens.
struct AttentionInputs {
  AttentionShape shape;
  int64_t stride;
  std::vector<float> q_rows;   // (Lq, stride), q at column 0
  std::vector<float> kv_rows;  // (Lk, stride), k at column Hq·D, v after it
  const float* q() const { return q_rows.data(); }
  const float* k() const { return kv_rows.data() + shape.q_heads * shape.head_dim; }
  const float* v() const { return k() + shape.kv_heads * shape.head_dim; }
};

AttentionInputs MakeInputs(const AttentionShape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t stride = (s.q_heads + 2 * s.kv_heads) * s.head_dim;
  return AttentionInputs{s, stride, RandomRows(rng, s.q_len, stride, stride, -2.0f, 2.0f),
                         RandomRows(rng, s.kv_len, stride, stride, -2.0f, 2.0f)};
}

AttentionParams MakeParams(const AttentionInputs& in, int64_t kv_begin, int64_t kv_len) {
  const AttentionShape& s = in.shape;
  AttentionParams p;
  p.q_len = s.q_len;
  p.kv_len = kv_len;
  p.num_q_heads = s.q_heads;
  p.num_kv_heads = s.kv_heads;
  p.head_dim = s.head_dim;
  p.q = in.q();
  p.k = in.k() + kv_begin * in.stride;
  p.v = in.v() + kv_begin * in.stride;
  p.q_stride = p.k_stride = p.v_stride = in.stride;
  p.q_position0 = s.q_position0;
  p.kv_position0 = s.kv_position0 + kv_begin;
  p.causal = s.causal;
  p.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  return p;
}

struct AttentionOutputs {
  std::vector<float> out;  // (Lq, Hq, D)
  std::vector<float> lse;  // (Lq, Hq)
};

AttentionOutputs RunAttention(const AttentionInputs& in, int64_t kv_begin, int64_t kv_len) {
  const AttentionShape& s = in.shape;
  AttentionOutputs result{NaNs(s.q_len * s.q_heads * s.head_dim), NaNs(s.q_len * s.q_heads)};
  AttentionParams p = MakeParams(in, kv_begin, kv_len);
  p.out = result.out.data();
  p.lse = result.lse.data();
  const absl::Status status = cpu::Attention(p);
  EXPECT_TRUE(status.ok()) << status;
  return result;
}

struct ReferenceOutputs {
  std::vector<double> out, lse;
};

// Softmax over every key the causal rule lets the row see, in double.
ReferenceOutputs NaiveReference(const AttentionInputs& in) {
  const AttentionShape& s = in.shape;
  const int64_t D = s.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  ReferenceOutputs ref{std::vector<double>(s.q_len * s.q_heads * D, 0.0),
                       std::vector<double>(s.q_len * s.q_heads, -INFINITY)};
  for (int64_t i = 0; i < s.q_len; ++i) {
    for (int64_t h = 0; h < s.q_heads; ++h) {
      const int64_t kv_head = h / (s.q_heads / s.kv_heads);
      const float* q = in.q() + i * in.stride + h * D;
      std::vector<double> scores;
      std::vector<int64_t> keys;
      for (int64_t j = 0; j < s.kv_len; ++j) {
        if (s.causal && s.kv_position0 + j > s.q_position0 + i) continue;
        const float* k = in.k() + j * in.stride + kv_head * D;
        double dot = 0.0;
        for (int64_t c = 0; c < D; ++c) dot += double{q[c]} * k[c];
        scores.push_back(dot * scale);
        keys.push_back(j);
      }
      if (keys.empty()) continue;
      double denom = 0.0;
      for (double score : scores) denom += std::exp(score);
      double* out = ref.out.data() + (i * s.q_heads + h) * D;
      for (size_t n = 0; n < keys.size(); ++n) {
        const float* v = in.v() + keys[n] * in.stride + kv_head * D;
        for (int64_t c = 0; c < D; ++c) out[c] += std::exp(scores[n]) / denom * v[c];
      }
      ref.lse[i * s.q_heads + h] = std::log(denom);
    }
  }
  return ref;
}

// lse may hold -inf (rows that see nothing): those must match exactly, the
// rest are compared in relative L2.
void ExpectLseMatches(const std::vector<float>& got, const std::vector<double>& want) {
  std::vector<float> finite_got;
  std::vector<double> finite_want;
  for (size_t r = 0; r < got.size(); ++r) {
    if (std::isinf(want[r])) {
      EXPECT_EQ(got[r], kNegInf) << "row " << r;
    } else {
      finite_got.push_back(got[r]);
      finite_want.push_back(want[r]);
    }
  }
  if (!finite_want.empty()) {
    EXPECT_TRUE(CloseInRelativeL2(finite_got, finite_want, kAttentionTolerance)) << "lse";
  }
}

void ExpectMatchesReference(const AttentionShape& shape, uint32_t seed) {
  SCOPED_TRACE(absl::StrCat("Lq=", shape.q_len, " Lk=", shape.kv_len, " Hq=", shape.q_heads,
                            " Hkv=", shape.kv_heads, " D=", shape.head_dim, " qpos=",
                            shape.q_position0, " kvpos=", shape.kv_position0,
                            " causal=", shape.causal));
  const AttentionInputs in = MakeInputs(shape, seed);
  const AttentionOutputs got = RunAttention(in, 0, shape.kv_len);
  const ReferenceOutputs want = NaiveReference(in);
  EXPECT_TRUE(CloseInRelativeL2(got.out, want.out, kAttentionTolerance)) << "out";
  ExpectLseMatches(got.lse, want.lse);
}

TEST(AttentionTest, NonCausalGqaMatchesNaiveSoftmax) {
  ExpectMatchesReference({5, 9, 6, 2, 7, 0, 0, false}, 1);
  ExpectMatchesReference({1, 1, 4, 4, 16, 3, 9, false}, 2);  // MHA, one key
  ExpectMatchesReference({3, 17, 8, 1, 5, 0, 0, false}, 3);  // MQA
}

TEST(AttentionTest, CausalByGlobalPositionMatchesNaiveSoftmax) {
  ExpectMatchesReference({13, 13, 6, 2, 7, 0, 0, true}, 4);    // prefill of one shard
  ExpectMatchesReference({13, 13, 6, 3, 8, 40, 40, true}, 5);  // same, shard not at 0
  ExpectMatchesReference({7, 10, 4, 2, 9, 20, 14, true}, 6);   // queries after keys start
  ExpectMatchesReference({6, 5, 4, 2, 9, 20, 3, true}, 7);     // keys all in the past
  ExpectMatchesReference({1, 23, 4, 1, 8, 22, 0, true}, 8);    // decode row
}

TEST(AttentionTest, BlockEntirelyInFutureGivesZeroOutAndNegInfLse) {
  const AttentionShape shape{4, 6, 4, 2, 5, /*q_position0=*/10, /*kv_position0=*/14, true};
  const AttentionOutputs got = RunAttention(MakeInputs(shape, 9), 0, shape.kv_len);
  EXPECT_EQ(got.out, std::vector<float>(got.out.size(), 0.0f));
  EXPECT_EQ(got.lse, std::vector<float>(got.lse.size(), kNegInf));
}

TEST(AttentionTest, NoKeysGivesZeroOutAndNegInfLse) {
  const AttentionShape shape{3, 0, 2, 1, 4, 0, 0, false};
  const AttentionOutputs got = RunAttention(MakeInputs(shape, 10), 0, 0);
  EXPECT_EQ(got.out, std::vector<float>(got.out.size(), 0.0f));
  EXPECT_EQ(got.lse, std::vector<float>(got.lse.size(), kNegInf));
}

// Merges `part` into `acc` (both from RunAttention) with AttentionMerge.
void Merge(const AttentionShape& shape, const AttentionOutputs& part, AttentionOutputs& acc) {
  AttentionMergeParams m;
  m.rows = shape.q_len * shape.q_heads;
  m.head_dim = shape.head_dim;
  m.out = acc.out.data();
  m.lse = acc.lse.data();
  m.part_out = part.out.data();
  m.part_lse = part.lse.data();
  const absl::Status status = cpu::AttentionMerge(m);
  ASSERT_TRUE(status.ok()) << status;
}

TEST(AttentionMergeTest, MergedKeyBlocksEqualAttentionOverAllKeys) {
  // Queries at positions 10..18 against keys 0..22: the second block starts in
  // the middle of the queries, so some rows see nothing of it (lse -inf).
  const AttentionShape shape{9, 23, 6, 2, 7, 10, 0, true};
  const AttentionInputs in = MakeInputs(shape, 11);
  const AttentionOutputs whole = RunAttention(in, 0, shape.kv_len);
  for (int64_t split : {1, 7, 14, 22}) {
    SCOPED_TRACE(absl::StrCat("split=", split));
    const AttentionOutputs first = RunAttention(in, 0, split);
    const AttentionOutputs second = RunAttention(in, split, shape.kv_len - split);
    // Empty accumulator as the engine keeps one: lse -inf, out uninitialized.
    AttentionOutputs acc{NaNs(first.out.size()), std::vector<float>(first.lse.size(), kNegInf)};
    Merge(shape, second, acc);
    Merge(shape, first, acc);
    EXPECT_TRUE(CloseInRelativeL2(acc.out, whole.out, kAttentionTolerance)) << "out";
    EXPECT_TRUE(CloseInRelativeL2(acc.lse, whole.lse, kAttentionTolerance)) << "lse";
  }
}

TEST(AttentionMergeTest, HandlesNegInfOnEitherSideWithoutNaN) {
  constexpr int64_t kD = 3;
  // Rows: (acc finite, part -inf), (acc -inf, part finite), (both -inf), (both finite).
  std::vector<float> out = {1, 2, 3, 7, 7, 7, 9, 9, 9, 1, 1, 1};  // (4, D)
  std::vector<float> lse = {0.5f, kNegInf, kNegInf, 0.0f};
  const std::vector<float> part_out = {5, 5, 5, 4, 5, 6, 8, 8, 8, 3, 3, 3};
  const std::vector<float> part_lse = {kNegInf, 1.5f, kNegInf, 0.0f};
  AttentionMergeParams m{4, kD, out.data(), lse.data(), part_out.data(), part_lse.data()};
  ASSERT_TRUE(cpu::AttentionMerge(m).ok());
  EXPECT_EQ(out, (std::vector<float>{1, 2, 3, 4, 5, 6, 0, 0, 0, 2, 2, 2}));
  EXPECT_EQ(lse[0], 0.5f);
  EXPECT_EQ(lse[1], 1.5f);
  EXPECT_EQ(lse[2], kNegInf);
  EXPECT_NEAR(lse[3], std::log(2.0f), 1e-6f);
}

// The workspace is a backend's scratch (CUDA's split-KV partials): the
// reference neither needs nor touches it, and its answer does not change.
TEST(AttentionTest, ReferenceIgnoresTheWorkspace) {
  const AttentionShape shape{3, 40, 8, 2, 16, 37, 0, true};
  const AttentionInputs in = MakeInputs(shape, 13);
  const AttentionOutputs want = RunAttention(in, 0, shape.kv_len);
  AttentionOutputs got{NaNs(want.out.size()), NaNs(want.lse.size())};
  std::vector<float> workspace = NaNs(64);
  AttentionParams p = MakeParams(in, 0, shape.kv_len);
  p.out = got.out.data();
  p.lse = got.lse.data();
  p.workspace = workspace.data();
  p.workspace_bytes = sizeof(float) * workspace.size();
  ASSERT_TRUE(cpu::Attention(p).ok());
  EXPECT_EQ(got.out, want.out);
  EXPECT_EQ(got.lse, want.lse);
  for (float x : workspace) EXPECT_TRUE(std::isnan(x));
}

TEST(AttentionTest, RejectsInvalidParams) {
  const AttentionShape shape{2, 3, 4, 2, 4, 0, 0, true};
  const AttentionInputs in = MakeInputs(shape, 12);
  std::vector<float> out(2 * 4 * 4);
  AttentionParams valid = MakeParams(in, 0, shape.kv_len);
  valid.out = out.data();
  ASSERT_TRUE(cpu::Attention(valid).ok());
  AttentionParams p = valid;
  p.num_kv_heads = 3;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Attention(p), "num_kv_heads (3)"));
  p = valid;
  p.scale = 0.0f;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Attention(p), "scale"));
  p = valid;
  p.k_stride = 7;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Attention(p), "k_stride"));
  p = valid;
  p.v = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Attention(p), "v must not be null"));
  p = valid;
  p.workspace_bytes = -1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Attention(p), "workspace_bytes must be >= 0. Given: -1"));
  p = valid;
  p.type = static_cast<ElementType>(7);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::Attention(p), "type must be kF32 or kBF16. Given: 7"));
  // bf16 operands are a valid request the CPU reference does not compute.
  p = valid;
  p.type = ElementType::kBF16;
  const absl::Status bf16 = cpu::Attention(p);
  EXPECT_EQ(bf16.code(), absl::StatusCode::kUnimplemented) << bf16;
  EXPECT_NE(bf16.message().find("Attention: the CPU backend computes fp32 operands. Given: bf16"),
            absl::string_view::npos)
      << bf16;

  AttentionMergeParams m{-1, 4, out.data(), out.data(), out.data(), out.data()};
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::AttentionMerge(m), "rows"));
}

}  // namespace
}  // namespace tessera
