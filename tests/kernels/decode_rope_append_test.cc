// The CPU DecodeRopeAppend against a direct loop: each request's q and k
// rows rotated as cpu::Rope rotates one token at its position, its k and v
// rows at row kv_lens[r] - 1 of its own caches and nowhere else (fp32; the
// rows strided as the fused q|k|v projection lays them out), and the
// contract's refusals.
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/decode_rope_append.h"
#include "kernels/rope.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

TEST(DecodeRopeAppendTest, RotatesEachRowAtItsPositionAndAppendsToItsCache) {
  std::mt19937 rng(std::random_device{}());
  const int64_t batch = 3, q_heads = 4, kv_heads = 2, head_dim = 16, rotary = 8;
  const int64_t q_width = q_heads * head_dim, kv_width = kv_heads * head_dim, stride = q_width + 2 * kv_width + 3;
  const std::vector<float> qkv = kernel_test::RandomFloats(rng, batch * stride);
  const std::vector<int32_t> positions = {0, 17, 4096}, kv_lens = {1, 5, 2};
  std::vector<std::vector<float>> k_caches, v_caches;
  for (int64_t r = 0; r < batch; ++r) {
    k_caches.push_back(kernel_test::NaNs((kv_lens[r] + 2) * kv_width));
    v_caches.push_back(kernel_test::NaNs((kv_lens[r] + 2) * kv_width));
  }
  std::vector<void*> k_ptrs, v_ptrs;
  for (int64_t r = 0; r < batch; ++r) {
    k_ptrs.push_back(k_caches[r].data());
    v_ptrs.push_back(v_caches[r].data());
  }
  std::vector<float> got = qkv;
  DecodeRopeAppendParams p;
  p.batch = batch;
  p.num_q_heads = q_heads;
  p.num_kv_heads = kv_heads;
  p.head_dim = head_dim;
  p.rotary_dim = rotary;
  p.q = got.data();
  p.q_stride = stride;
  p.k = got.data() + q_width;
  p.k_stride = stride;
  p.v = got.data() + q_width + kv_width;
  p.v_stride = stride;
  p.positions = positions.data();
  p.k_cache = k_ptrs.data();
  p.v_cache = v_ptrs.data();
  p.kv_lens = kv_lens.data();
  ASSERT_TRUE(cpu::DecodeRopeAppend(p).ok());

  std::vector<float> want = qkv;
  for (int64_t r = 0; r < batch; ++r) {
    RopeParams q{1, q_heads, head_dim, rotary, 10000.0f, positions[r], want.data() + r * stride};
    ASSERT_TRUE(cpu::Rope(q).ok());
    RopeParams k{1, kv_heads, head_dim, rotary, 10000.0f, positions[r], want.data() + r * stride + q_width};
    ASSERT_TRUE(cpu::Rope(k).ok());
  }
  EXPECT_EQ(got, want);
  for (int64_t r = 0; r < batch; ++r) {
    for (int64_t row = 0; row < kv_lens[r] + 2; ++row) {
      for (int64_t c = 0; c < kv_width; ++c) {
        const float k = k_caches[r][row * kv_width + c], v = v_caches[r][row * kv_width + c];
        if (row == kv_lens[r] - 1) {
          EXPECT_EQ(k, want[r * stride + q_width + c]) << r << " " << c;
          EXPECT_EQ(v, want[r * stride + q_width + kv_width + c]) << r << " " << c;
        } else {
          EXPECT_TRUE(std::isnan(k) && std::isnan(v)) << "request " << r << " row " << row;
        }
      }
    }
  }
}

TEST(DecodeRopeAppendTest, RefusesBadParams) {
  DecodeRopeAppendParams p;
  p.batch = 1;
  p.num_q_heads = 2;
  p.num_kv_heads = 1;
  p.head_dim = 8;
  p.rotary_dim = 3;
  EXPECT_TRUE(kernel_test::IsInvalidArgumentMentioning(cpu::DecodeRopeAppend(p), "rotary_dim"));
  p.rotary_dim = 4;
  EXPECT_TRUE(kernel_test::IsInvalidArgumentMentioning(cpu::DecodeRopeAppend(p), "q"));
}

}  // namespace
}  // namespace tessera
