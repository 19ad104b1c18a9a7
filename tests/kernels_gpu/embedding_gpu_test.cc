// Embedding on CUDA, for an fp32 and a bf16 table: against the CPU reference
// (fp32), and bit for bit against the exact answer (the table row, widened
// from bf16 exactly); a bad id anywhere is INVALID_ARGUMENT and leaves the
// NaN-poisoned output untouched, as on the CPU.
#include <cmath>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/embedding.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::CloseInRelativeL2;
using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::NaNs;
using gpu_test::RandomFloats;
using kernel_test::IsInvalidArgumentMentioning;

constexpr double kTolerance = 1e-5;  // fp32 against the fp32 CPU reference

class EmbeddingGpuTest : public GpuTest {};

// Bitwise equality, so signed zeros and (unexpected) NaNs all count.
bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

EmbeddingParams Params(int64_t tokens, int64_t vocab, int64_t hidden, const int32_t* ids,
                       ElementType table_type, const void* table, float* out) {
  EmbeddingParams p;
  p.num_tokens = tokens;
  p.vocab_size = vocab;
  p.hidden = hidden;
  p.ids = ids;
  p.table_type = table_type;
  p.table = table;
  p.out = out;
  return p;
}

TEST_F(EmbeddingGpuTest, F32MatchesCpuAndRejectsBadIds) {
  std::mt19937 rng(std::random_device{}());
  for (auto [tokens, vocab, hidden] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1},
                                       {7, 50, 33},
                                       {513, 1000, 256}}) {
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab - 1));
    std::vector<int32_t> ids(tokens);
    for (int32_t& id : ids) id = pick(rng);
    const auto table = RandomFloats(rng, vocab * hidden);
    std::vector<float> want(tokens * hidden);
    ASSERT_TRUE(cpu::Embedding(Params(tokens, vocab, hidden, ids.data(), ElementType::kF32,
                                      table.data(), want.data()))
                    .ok());
    DeviceArray<int32_t> d_ids(ids);
    DeviceArray<float> d_table(table), d_out(NaNs(tokens * hidden));
    ASSERT_TRUE(cuda::Embedding(Params(tokens, vocab, hidden, d_ids.get(), ElementType::kF32,
                                       d_table.get(), d_out.get()),
                                nullptr)
                    .ok());
    EXPECT_TRUE(CloseInRelativeL2(d_out.Download(), want, kTolerance));
  }
  // A bad id is INVALID_ARGUMENT and leaves the output untouched.
  for (int32_t bad : {-1, 50}) {
    std::vector<int32_t> ids = {3, bad, 4};
    DeviceArray<int32_t> d_ids(ids);
    DeviceArray<float> d_table(RandomFloats(rng, 50 * 8)), d_out(NaNs(3 * 8));
    const absl::Status status = cuda::Embedding(
        Params(3, 50, 8, d_ids.get(), ElementType::kF32, d_table.get(), d_out.get()), nullptr);
    EXPECT_TRUE(IsInvalidArgumentMentioning(status, "position 1")) << status;
    for (float v : d_out.Download()) EXPECT_TRUE(std::isnan(v));
  }
}

TEST_F(EmbeddingGpuTest, GathersBothTableTypesExactlyAndRejectsBadIds) {
  std::mt19937 rng(std::random_device{}());
  for (auto [tokens, vocab, hidden] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 50, 33}, {513, 1000, 257}}) {
    SCOPED_TRACE(testing::Message()
                 << tokens << " tokens, vocab " << vocab << ", hidden " << hidden);
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab - 1));
    std::vector<int32_t> ids(tokens);
    for (int32_t& id : ids) id = pick(rng);
    const auto table = RandomFloats(rng, vocab * hidden);  // (vocab, hidden)
    DeviceArray<int32_t> d_ids(ids);
    DeviceArray<float> d_table(table);
    DeviceArray<uint16_t> d_table_bf16(gpu_test::ToBf16(table));
    for (ElementType type : {ElementType::kF32, ElementType::kBF16}) {
      SCOPED_TRACE(ElementTypeName(type));
      const void* d_typed_table =
          type == ElementType::kF32 ? static_cast<const void*>(d_table.get()) : d_table_bf16.get();
      std::vector<float> want(tokens * hidden);  // (tokens, hidden)
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t c = 0; c < hidden; ++c) {
          const float value = table[ids[t] * hidden + c];
          want[t * hidden + c] = type == ElementType::kF32 ? value : gpu_test::RoundBf16(value);
        }
      }
      DeviceArray<float> d_out(NaNs(tokens * hidden));
      EmbeddingParams p =
          Params(tokens, vocab, hidden, d_ids.get(), type, d_typed_table, d_out.get());
      const absl::Status status = cuda::Embedding(p, nullptr);
      ASSERT_TRUE(status.ok()) << status;
      EXPECT_TRUE(SameBits(d_out.Download(), want));

      // A bad id anywhere: INVALID_ARGUMENT, and out keeps its poison.
      for (int32_t bad : {-1, static_cast<int32_t>(vocab)}) {
        std::vector<int32_t> bad_ids = ids;
        bad_ids[tokens / 2] = bad;
        DeviceArray<int32_t> d_bad_ids(bad_ids);
        DeviceArray<float> d_untouched(NaNs(tokens * hidden));
        p.ids = d_bad_ids.get();
        p.out = d_untouched.get();
        EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Embedding(p, nullptr), "token id"));
        for (float v : d_untouched.Download()) ASSERT_TRUE(std::isnan(v));
      }
      p.ids = d_ids.get();
      p.table = nullptr;
      EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Embedding(p, nullptr), "table"));
    }
  }
  DeviceArray<int32_t> d_ids(std::vector<int32_t>{0});
  DeviceArray<float> d_table(std::vector<float>(4, 1.0f)), d_out(NaNs(4));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cuda::Embedding(Params(1, 1, 4, d_ids.get(), static_cast<ElementType>(7), d_table.get(),
                             d_out.get()),
                      nullptr),
      "table_type"));
}

}  // namespace
}  // namespace tessera
