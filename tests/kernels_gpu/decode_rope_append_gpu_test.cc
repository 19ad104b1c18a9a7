// DecodeRopeAppend on CUDA against what it replaces, per request: cuda::Rope
// at the request's position on its q and k rows, then its k and v rows copied
// into its cache. The rotation must match bit for bit (a batched decode step
// and its graph give the logits the per-request ops gave), the rows must land
// at kv_lens[r] - 1 of each request's own cache (every other cache row left
// as poisoned), in fp32 and bf16, with partial rotary, no rotary, and strided
// q|k|v rows as the fused projection lays them out.
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/decode_rope_append.h"
#include "kernels/rope.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::DeviceArray;
using gpu_test::GpuTest;

class DecodeRopeAppendGpuTest : public GpuTest {};

struct Case {
  int64_t batch, q_heads, kv_heads, head_dim, rotary;
  ElementType type;
};

// Random elements of `type` as raw bytes (bf16: rounded fp32 bits).
std::vector<uint8_t> RandomElements(std::mt19937& rng, int64_t n, ElementType type) {
  const std::vector<float> f = gpu_test::RandomFloats(rng, n, -2.0f, 2.0f);
  std::vector<uint8_t> bytes(n * ElementBytes(type));
  if (type == ElementType::kF32) {
    std::memcpy(bytes.data(), f.data(), bytes.size());
  } else {
    const std::vector<uint16_t> b = gpu_test::ToBf16(f);
    std::memcpy(bytes.data(), b.data(), bytes.size());
  }
  return bytes;
}

TEST_F(DecodeRopeAppendGpuTest, MatchesPerRequestRopeAndCopyBitForBit) {
  std::mt19937 rng(std::random_device{}());
  for (const Case& c : {Case{1, 1, 1, 2, 2, ElementType::kF32}, Case{5, 8, 2, 64, 64, ElementType::kF32},
                        Case{3, 4, 4, 128, 64, ElementType::kBF16}, Case{32, 32, 8, 128, 128, ElementType::kBF16},
                        Case{4, 6, 3, 80, 0, ElementType::kF32}}) {
    SCOPED_TRACE(testing::Message() << "batch " << c.batch << " Hq " << c.q_heads << " Hkv " << c.kv_heads << " D "
                                    << c.head_dim << " rotary " << c.rotary << " " << ElementTypeName(c.type));
    const int64_t eb = ElementBytes(c.type);
    const int64_t q_width = c.q_heads * c.head_dim, kv_width = c.kv_heads * c.head_dim;
    const int64_t stride = q_width + 2 * kv_width + 8;  // elements: one q|k|v row and some padding
    const std::vector<uint8_t> qkv = RandomElements(rng, c.batch * stride, c.type);  // (batch, stride)
    std::vector<int32_t> positions(c.batch), kv_lens(c.batch);
    std::vector<int64_t> capacity(c.batch);
    for (int64_t r = 0; r < c.batch; ++r) {
      positions[r] = static_cast<int32_t>(std::uniform_int_distribution<int>(0, 200000)(rng));
      kv_lens[r] = std::uniform_int_distribution<int>(1, 40)(rng);
      capacity[r] = kv_lens[r] + std::uniform_int_distribution<int>(0, 3)(rng);
    }
    const std::vector<uint8_t> poison(64 * kv_width * eb, 0xFF);  // NaN in fp32 and bf16
    std::vector<std::unique_ptr<DeviceArray<uint8_t>>> k_caches, v_caches;
    std::vector<void*> k_ptrs, v_ptrs;
    for (int64_t r = 0; r < c.batch; ++r) {
      const std::vector<uint8_t> cache(poison.begin(), poison.begin() + capacity[r] * kv_width * eb);
      k_caches.push_back(std::make_unique<DeviceArray<uint8_t>>(cache));
      v_caches.push_back(std::make_unique<DeviceArray<uint8_t>>(cache));
      k_ptrs.push_back(k_caches.back()->get());
      v_ptrs.push_back(v_caches.back()->get());
    }
    const std::vector<float> inv_freq = c.rotary > 0 ? RopeInverseFrequencies(10000.0f, c.rotary)
                                                     : std::vector<float>{0.0f};
    DeviceArray<uint8_t> d_qkv(qkv), d_want(qkv);
    DeviceArray<int32_t> d_positions(positions), d_lens(kv_lens);
    DeviceArray<float> d_inv_freq(inv_freq);
    DeviceArray<void*> d_k_ptrs(k_ptrs), d_v_ptrs(v_ptrs);

    DecodeRopeAppendParams p;
    p.batch = c.batch;
    p.num_q_heads = c.q_heads;
    p.num_kv_heads = c.kv_heads;
    p.head_dim = c.head_dim;
    p.rotary_dim = c.rotary;
    p.type = c.type;
    p.q = d_qkv.get();
    p.q_stride = stride;
    p.k = d_qkv.get() + q_width * eb;
    p.k_stride = stride;
    p.v = d_qkv.get() + (q_width + kv_width) * eb;
    p.v_stride = stride;
    p.positions = d_positions.get();
    p.inv_freq = d_inv_freq.get();
    p.k_cache = d_k_ptrs.get();
    p.v_cache = d_v_ptrs.get();
    p.kv_lens = d_lens.get();
    const absl::Status status = cuda::DecodeRopeAppend(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;

    for (int64_t r = 0; r < c.batch && c.rotary > 0; ++r) {  // what the per-request path ran
      uint8_t* row = d_want.get() + r * stride * eb;
      RopeParams q{1, c.q_heads, c.head_dim, c.rotary, 10000.0f, positions[r], row, 0, c.type};
      ASSERT_TRUE(cuda::Rope(q, nullptr).ok());
      RopeParams k{1, c.kv_heads, c.head_dim, c.rotary, 10000.0f, positions[r], row + q_width * eb, 0, c.type};
      ASSERT_TRUE(cuda::Rope(k, nullptr).ok());
    }
    const std::vector<uint8_t> got = d_qkv.Download(), want = d_want.Download();
    EXPECT_EQ(got, want);  // q and k rotated as Rope rotates them, v and the padding untouched
    for (int64_t r = 0; r < c.batch; ++r) {
      SCOPED_TRACE(testing::Message() << "request " << r);
      const std::vector<uint8_t> k_cache = k_caches[r]->Download(), v_cache = v_caches[r]->Download();
      const int64_t row = (kv_lens[r] - 1) * kv_width * eb, row_bytes = kv_width * eb;
      const uint8_t* want_k = want.data() + (r * stride + q_width) * eb;
      const uint8_t* want_v = want_k + kv_width * eb;
      EXPECT_EQ(std::vector<uint8_t>(k_cache.begin() + row, k_cache.begin() + row + row_bytes),
                std::vector<uint8_t>(want_k, want_k + row_bytes));
      EXPECT_EQ(std::vector<uint8_t>(v_cache.begin() + row, v_cache.begin() + row + row_bytes),
                std::vector<uint8_t>(want_v, want_v + row_bytes));
      for (int64_t b = 0; b < static_cast<int64_t>(k_cache.size()); ++b) {
        if (b >= row && b < row + row_bytes) continue;
        ASSERT_EQ(k_cache[b], 0xFF) << "byte " << b;
        ASSERT_EQ(v_cache[b], 0xFF) << "byte " << b;
      }
    }
  }
}

TEST_F(DecodeRopeAppendGpuTest, RejectsBadParams) {
  DecodeRopeAppendParams p;
  p.batch = 1;
  p.num_q_heads = 2;
  p.num_kv_heads = 1;
  p.head_dim = 8;
  p.rotary_dim = 3;
  EXPECT_EQ(cuda::DecodeRopeAppend(p, nullptr).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera
