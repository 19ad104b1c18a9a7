// The bf16 mode's ops (kernels/cuda/mixed_precision.h) on fresh random inputs
// of awkward shapes (odd sizes, row strides past the width, padding poisoned
// with NaN). kF32 must be the fp32 op: MixedLinear against the CPU reference,
// MixedAttention bit-identical to cuda::Attention. kBF16 follows the
// flash-attention rule: the error against a reference computed from the
// unrounded inputs is at most twice that of a plain implementation that rounds
// its inputs and its output to bf16. The casts and the gather have exact
// answers (host round-to-nearest-even), so they are compared bit for bit.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/attention.h"
#include "kernels/cuda/mixed_precision.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using cuda::ElementType;
using gpu_test::CloseAllowingNegInf;
using gpu_test::CloseInRelativeL2;
using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::NaNs;
using gpu_test::RandomFloats;
using gpu_test::RandomRows;
using kernel_test::IsInvalidArgumentMentioning;

constexpr double kTolerance = 1e-5;        // fp32 against the fp32 CPU reference
constexpr float kPadding = 7.0f;           // fp32 output padding must keep this value
constexpr uint16_t kPaddingBits = 0xABCD;  // bf16 output padding likewise

class MixedPrecisionGpuTest : public GpuTest {};

// Bitwise equality, so -inf, signed zeros and (unexpected) NaNs all count.
bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

TEST_F(MixedPrecisionGpuTest, ElementBytes) {
  EXPECT_EQ(cuda::ElementBytes(ElementType::kF32), 4);
  EXPECT_EQ(cuda::ElementBytes(ElementType::kBF16), 2);
}

// ---------------------------------------------------------------- MixedLinear

struct LinearCase {
  int64_t rows, in, out, x_pad, y_pad;
  bool bias, accumulate;
};

const LinearCase kLinearCases[] = {
    {1, 1, 1, 0, 0, false, false},       {1, 64, 33, 0, 0, true, false},
    {7, 33, 17, 3, 5, true, true},       {37, 515, 263, 5, 7, true, true},
    {130, 257, 65, 1, 0, false, true},   {256, 1024, 512, 0, 0, false, false},
    {300, 777, 1001, 2, 3, true, false},
};

// y with padding columns kPadding and, in the (rows, out) part, random values
// to accumulate onto or NaN (every element must then be written).
std::vector<float> LinearOutput(std::mt19937& rng, const LinearCase& c, int64_t y_stride) {
  std::vector<float> y(c.rows * y_stride, kPadding);
  const auto init = c.accumulate ? RandomFloats(rng, c.rows * c.out) : NaNs(c.rows * c.out);
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t n = 0; n < c.out; ++n) y[r * y_stride + n] = init[r * c.out + n];
  }
  return y;
}

// The (rows, out) part of a strided y, checking that the padding kept kPadding.
std::vector<float> LinearValues(const std::vector<float>& y, const LinearCase& c,
                                int64_t y_stride) {
  std::vector<float> values(c.rows * c.out);  // (rows, out)
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t n = 0; n < y_stride; ++n) {
      if (n < c.out) {
        values[r * c.out + n] = y[r * y_stride + n];
      } else {
        EXPECT_EQ(y[r * y_stride + n], kPadding) << "padding of row " << r << " overwritten";
      }
    }
  }
  return values;
}

TEST_F(MixedPrecisionGpuTest, LinearF32MatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const LinearCase& c : kLinearCases) {
    SCOPED_TRACE(testing::Message() << c.rows << "x" << c.in << " -> " << c.out << " bias "
                                    << c.bias << " accumulate " << c.accumulate);
    const int64_t x_stride = c.in + c.x_pad, y_stride = c.out + c.y_pad;
    const auto x = RandomRows(rng, c.rows, c.in, x_stride);
    const auto w = RandomFloats(rng, c.out * c.in);
    const auto bias = RandomFloats(rng, c.out);
    const auto y = LinearOutput(rng, c, y_stride);
    std::vector<float> want = y;
    LinearParams cpu_p{c.rows,   c.in,    c.out,       x.data(), x_stride,
                       w.data(), nullptr, want.data(), y_stride, c.accumulate};
    if (c.bias) cpu_p.bias = bias.data();
    ASSERT_TRUE(cpu::Linear(cpu_p).ok());
    DeviceArray<float> d_x(x), d_w(w), d_bias(bias), d_y(y);
    cuda::MixedLinearParams p;
    p.rows = c.rows;
    p.in_features = c.in;
    p.out_features = c.out;
    p.type = ElementType::kF32;
    p.x = d_x.get();
    p.x_stride = x_stride;
    p.weight = d_w.get();
    p.bias = c.bias ? d_bias.get() : nullptr;
    p.y = d_y.get();
    p.y_stride = y_stride;
    p.accumulate = c.accumulate;
    const absl::Status status = cuda::MixedLinear(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(CloseInRelativeL2(LinearValues(d_y.Download(), c, y_stride),
                                  LinearValues(want, c, y_stride), kTolerance));
  }
}

TEST_F(MixedPrecisionGpuTest, LinearBf16WithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  for (const LinearCase& c : kLinearCases) {
    // An L2 over a handful of outputs is a coin toss: the plain output
    // rounding can land nearer the exact value than the unrounded product.
    if (c.rows * c.out < 32) continue;
    SCOPED_TRACE(testing::Message() << c.rows << "x" << c.in << " -> " << c.out << " bias "
                                    << c.bias << " accumulate " << c.accumulate);
    const int64_t x_stride = c.in + c.x_pad, y_stride = c.out + c.y_pad;
    const auto x = RandomRows(rng, c.rows, c.in, x_stride);  // (rows, in), NaN padding
    const auto w = RandomFloats(rng, c.out * c.in);          // (out, in)
    const auto bias = RandomFloats(rng, c.out);
    const auto y = LinearOutput(rng, c, y_stride);
    // float64 on the unrounded x and W; the plain bf16 implementation rounds
    // x and W, sums exactly, and rounds y. Bias and the accumulated y are fp32
    // operands in both.
    const auto xr = gpu_test::RoundedBf16(x), wr = gpu_test::RoundedBf16(w);
    std::vector<double> ref(c.rows * c.out);
    std::vector<float> plain(c.rows * c.out);
    for (int64_t i = 0; i < c.rows; ++i) {
      for (int64_t j = 0; j < c.out; ++j) {
        double exact = 0.0, rounded = 0.0;
        for (int64_t l = 0; l < c.in; ++l) {
          exact += double{x[i * x_stride + l]} * w[j * c.in + l];
          rounded += double{xr[i * x_stride + l]} * wr[j * c.in + l];
        }
        const double add = (c.bias ? bias[j] : 0.0) + (c.accumulate ? y[i * y_stride + j] : 0.0);
        ref[i * c.out + j] = exact + add;
        plain[i * c.out + j] = gpu_test::RoundBf16(static_cast<float>(rounded + add));
      }
    }
    DeviceArray<uint16_t> d_x(gpu_test::ToBf16(x)), d_w(gpu_test::ToBf16(w));
    DeviceArray<float> d_bias(bias), d_y(y);
    cuda::MixedLinearParams p;
    p.rows = c.rows;
    p.in_features = c.in;
    p.out_features = c.out;
    p.type = ElementType::kBF16;
    p.x = d_x.get();
    p.x_stride = x_stride;
    p.weight = d_w.get();
    p.bias = c.bias ? d_bias.get() : nullptr;
    p.y = d_y.get();
    p.y_stride = y_stride;
    p.accumulate = c.accumulate;
    const absl::Status status = cuda::MixedLinear(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const std::vector<float> got = LinearValues(d_y.Download(), c, y_stride);
    for (float v : got) ASSERT_TRUE(std::isfinite(v));
    const double err = gpu_test::RelativeL2(got, ref);
    const double plain_err = gpu_test::RelativeL2(plain, ref);
    std::printf(
        "MixedLinear bf16: %lldx%lld -> %lld bias %d accumulate %d: relative L2 %.3g, "
        "plain bf16 %.3g\n",
        static_cast<long long>(c.rows), static_cast<long long>(c.in), static_cast<long long>(c.out),
        c.bias, c.accumulate, err, plain_err);
    EXPECT_GT(plain_err, 0.0);
    EXPECT_LE(err, 2.0 * plain_err);
  }
}

TEST_F(MixedPrecisionGpuTest, LinearRejectsBadParams) {
  DeviceArray<float> d_buf(std::vector<float>(64, 0.0f));
  cuda::MixedLinearParams p;
  p.rows = 2;
  p.in_features = 4;
  p.out_features = 4;
  p.type = ElementType::kBF16;
  p.x = d_buf.get();
  p.weight = d_buf.get();
  p.y = d_buf.get() + 32;
  cuda::MixedLinearParams bad = p;
  bad.x_stride = 3;
  EXPECT_TRUE(
      IsInvalidArgumentMentioning(cuda::MixedLinear(bad, nullptr), "MixedLinear: x_stride"));
  bad = p;
  bad.y_stride = 2;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MixedLinear(bad, nullptr), "y_stride"));
  bad = p;
  bad.weight = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MixedLinear(bad, nullptr), "weight"));
  bad = p;
  bad.in_features = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MixedLinear(bad, nullptr), "in_features"));
  bad = p;
  bad.out_features = int64_t{1} << 32;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MixedLinear(bad, nullptr), "out_features"));
  bad = p;
  bad.type = static_cast<ElementType>(7);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MixedLinear(bad, nullptr), "type"));
  bad = p;
  bad.rows = 0;  // nothing to do
  EXPECT_TRUE(cuda::MixedLinear(bad, nullptr).ok());
}

// ------------------------------------------------------ StoreAs / LoadAsFloat

struct CastCase {
  int64_t rows, width, in_stride, out_stride;  // a stride of 0 means width
};

const CastCase kCastCases[] = {
    {1, 1, 0, 0}, {7, 33, 40, 35}, {3, 17, 0, 19}, {64, 4099, 4100, 4103}, {300, 1000, 0, 0},
};

// Random rows over many binades, with the rounding corner cases written into
// the first row: ties to even (down and up), a subnormal tie, the largest
// float (rounds to inf), signed zeros.
std::vector<float> CastInput(std::mt19937& rng, int64_t rows, int64_t width, int64_t stride) {
  std::vector<float> v = RandomRows(rng, rows, width, stride);
  std::uniform_int_distribution<int> exponent(-30, 30);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < width; ++c) {
      v[r * stride + c] = std::ldexp(v[r * stride + c], exponent(rng));
    }
  }
  const uint32_t corners[] = {0x3F808000u, 0x3F818000u, 0xBF808000u, 0xBF818000u, 0x00008000u,
                              0x00018000u, 0x7F7FFFFFu, 0x80000000u, 0x00000000u, 0x3F80FFFFu};
  for (int64_t c = 0; c < width && c < 10; ++c) std::memcpy(&v[c], &corners[c], sizeof(float));
  return v;
}

TEST_F(MixedPrecisionGpuTest, StoreAsAndLoadAsFloatRoundTripBf16Exactly) {
  std::mt19937 rng(std::random_device{}());
  for (const CastCase& c : kCastCases) {
    SCOPED_TRACE(testing::Message()
                 << c.rows << "x" << c.width << " strides " << c.in_stride << ", " << c.out_stride);
    const int64_t in_stride = c.in_stride == 0 ? c.width : c.in_stride;
    const int64_t out_stride = c.out_stride == 0 ? c.width : c.out_stride;
    const auto in = CastInput(rng, c.rows, c.width, in_stride);
    DeviceArray<float> d_in(in);
    DeviceArray<uint16_t> d_bf16(std::vector<uint16_t>(c.rows * out_stride, kPaddingBits));
    absl::Status status = cuda::StoreAs(ElementType::kBF16, c.rows, c.width, d_in.get(),
                                        c.in_stride, d_bf16.get(), c.out_stride, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const std::vector<uint16_t> bits = d_bf16.Download();
    int64_t mismatches = 0;
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < out_stride; ++col) {
        const uint16_t want =
            col < c.width ? gpu_test::ToBf16Bits(in[r * in_stride + col]) : kPaddingBits;
        if (bits[r * out_stride + col] != want && ++mismatches <= 5) {
          ADD_FAILURE() << "StoreAs row " << r << " column " << col << ": got 0x" << std::hex
                        << bits[r * out_stride + col] << ", want 0x" << want << std::dec;
        }
      }
    }
    EXPECT_EQ(mismatches, 0);

    // Back to fp32 through a third stride: exactly RoundBf16 of the input.
    const int64_t back_stride = c.width + 3;
    DeviceArray<float> d_back(std::vector<float>(c.rows * back_stride, kPadding));
    status = cuda::LoadAsFloat(ElementType::kBF16, c.rows, c.width, d_bf16.get(), c.out_stride,
                               d_back.get(), back_stride, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    std::vector<float> want(c.rows * back_stride, kPadding);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < c.width; ++col) {
        want[r * back_stride + col] = gpu_test::RoundBf16(in[r * in_stride + col]);
      }
    }
    EXPECT_TRUE(SameBits(d_back.Download(), want));
  }
}

TEST_F(MixedPrecisionGpuTest, StoreAsAndLoadAsFloatCopyF32Exactly) {
  std::mt19937 rng(std::random_device{}());
  for (const CastCase& c : kCastCases) {
    SCOPED_TRACE(testing::Message()
                 << c.rows << "x" << c.width << " strides " << c.in_stride << ", " << c.out_stride);
    const int64_t in_stride = c.in_stride == 0 ? c.width : c.in_stride;
    const int64_t out_stride = c.out_stride == 0 ? c.width : c.out_stride;
    const auto in = CastInput(rng, c.rows, c.width, in_stride);
    std::vector<float> want(c.rows * out_stride, kPadding);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < c.width; ++col)
        want[r * out_stride + col] = in[r * in_stride + col];
    }
    DeviceArray<float> d_in(in), d_stored(std::vector<float>(c.rows * out_stride, kPadding)),
        d_loaded(std::vector<float>(c.rows * out_stride, kPadding));
    absl::Status status = cuda::StoreAs(ElementType::kF32, c.rows, c.width, d_in.get(), c.in_stride,
                                        d_stored.get(), c.out_stride, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(SameBits(d_stored.Download(), want)) << "StoreAs";
    status = cuda::LoadAsFloat(ElementType::kF32, c.rows, c.width, d_in.get(), c.in_stride,
                               d_loaded.get(), c.out_stride, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(SameBits(d_loaded.Download(), want)) << "LoadAsFloat";
  }
}

TEST_F(MixedPrecisionGpuTest, CastsRejectBadParams) {
  DeviceArray<float> d_a(std::vector<float>(64, 1.0f)), d_b(std::vector<float>(64, 1.0f));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cuda::StoreAs(ElementType::kBF16, 2, 8, d_a.get(), 0, d_b.get(), 7, nullptr),
      "StoreAs: out_stride"));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cuda::LoadAsFloat(ElementType::kBF16, 2, 8, d_a.get(), 5, d_b.get(), 0, nullptr),
      "LoadAsFloat: in_stride"));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cuda::LoadAsFloat(ElementType::kBF16, 2, 8, nullptr, 0, d_b.get(), 0, nullptr), "in"));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cuda::StoreAs(ElementType::kF32, 2, 0, d_a.get(), 0, d_b.get(), 0, nullptr), "width"));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cuda::StoreAs(ElementType::kBF16, 2, 8, d_a.get(), 0, d_a.get(), 0, nullptr), "alias"));
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cuda::StoreAs(static_cast<ElementType>(7), 2, 8, d_a.get(), 0, d_b.get(), 0, nullptr),
      "type"));
  // fp32 in place with equal strides is allowed (and a no-op).
  EXPECT_TRUE(cuda::StoreAs(ElementType::kF32, 2, 8, d_a.get(), 8, d_a.get(), 0, nullptr).ok());
  EXPECT_TRUE(SameBits(d_a.Download(), std::vector<float>(64, 1.0f)));
}

// ------------------------------------------------------------- MixedEmbedding

TEST_F(MixedPrecisionGpuTest, EmbeddingGathersExactlyAndRejectsBadIds) {
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
      SCOPED_TRACE(type == ElementType::kF32 ? "fp32 table" : "bf16 table");
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
      EmbeddingParams p{tokens, vocab, hidden, d_ids.get(), nullptr, d_out.get()};
      const absl::Status status = cuda::MixedEmbedding(p, type, d_typed_table, nullptr);
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
        EXPECT_TRUE(IsInvalidArgumentMentioning(
            cuda::MixedEmbedding(p, type, d_typed_table, nullptr), "token id"));
        for (float v : d_untouched.Download()) ASSERT_TRUE(std::isnan(v));
      }
      p.ids = d_ids.get();
      EXPECT_TRUE(
          IsInvalidArgumentMentioning(cuda::MixedEmbedding(p, type, nullptr, nullptr), "table"));
    }
  }
}

// ------------------------------------------------------------- MixedAttention

struct AttentionCase {
  int64_t q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, kv_pos0;
  bool causal, with_lse;
  int64_t pad;  // extra elements per token row of q, k, v
};

const AttentionCase kAttentionCases[] = {
    {300, 200, 6, 2, 64, 120, 20, true, true, 3},  // q after k, Lq != Lk, 5 q tiles, strides
    {77, 333, 6, 2, 128, 300, 0, true, true, 1},   // queries after most keys
    {200, 150, 6, 2, 128, 0, 70, true, true, 5},   // rows 0..69 see nothing: tile 0 all future
    {50, 40, 6, 2, 64, 0, 100, true, true, 1},     // no row sees a key
    {130, 90, 6, 2, 64, 0, 0, false, false, 2},    // not causal, no lse
    {20, 0, 6, 2, 128, 0, 0, true, true, 0},       // kv_len 0
    {1, 777, 6, 2, 128, 776, 0, true, true, 0},    // decode row
    {513, 513, 6, 2, 128, 0, 0, true, false, 0},   // prefill, no lse
    {70, 95, 4, 1, 80, 40, 10, true, true, 7},     // odd head_dim, GQA 4:1
    {100, 150, 2, 2, 256, 50, 0, true, true, 2},   // head_dim 256 tiles
    {33, 47, 3, 1, 16, 5, 0, true, true, 1},       // small head_dim
};

std::string Describe(const AttentionCase& c) {
  return absl::StrCat("Lq ", c.q_len, " Lk ", c.kv_len, " Hq ", c.q_heads, " Hkv ", c.kv_heads,
                      " D ", c.head_dim, " q0 ", c.q_pos0, " k0 ", c.kv_pos0, " causal ",
                      static_cast<int>(c.causal), " lse ", static_cast<int>(c.with_lse), " pad ",
                      c.pad);
}

// Inputs of one case: fp32 rows padded with NaN, strides in elements.
struct AttentionInputs {
  int64_t q_stride, kv_stride;
  std::vector<float> q, k, v;
};

AttentionInputs MakeAttentionInputs(std::mt19937& rng, const AttentionCase& c) {
  AttentionInputs in;
  in.q_stride = c.q_heads * c.head_dim + c.pad;
  in.kv_stride = c.kv_heads * c.head_dim + c.pad;
  in.q = RandomRows(rng, c.q_len, c.q_heads * c.head_dim, in.q_stride, -2.0f, 2.0f);
  in.k = RandomRows(rng, c.kv_len, c.kv_heads * c.head_dim, in.kv_stride, -2.0f, 2.0f);
  in.v = RandomRows(rng, c.kv_len, c.kv_heads * c.head_dim, in.kv_stride);
  return in;
}

AttentionParams MakeAttentionParams(const AttentionCase& c, const AttentionInputs& in) {
  AttentionParams p;
  p.q_len = c.q_len;
  p.kv_len = c.kv_len;
  p.num_q_heads = c.q_heads;
  p.num_kv_heads = c.kv_heads;
  p.head_dim = c.head_dim;
  p.q_stride = in.q_stride;
  p.k_stride = in.kv_stride;
  p.v_stride = in.kv_stride;
  p.q_position0 = c.q_pos0;
  p.kv_position0 = c.kv_pos0;
  p.causal = c.causal;
  p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return p;
}

// The output rows (of Lq·Hq rows of D) whose lse is finite, i.e. that see a key.
std::vector<float> SeenRows(const std::vector<float>& rows, const std::vector<float>& lse,
                            int64_t head_dim) {
  std::vector<float> seen;
  for (size_t r = 0; r < lse.size(); ++r) {
    if (lse[r] == -INFINITY) continue;
    seen.insert(seen.end(), rows.begin() + r * head_dim, rows.begin() + (r + 1) * head_dim);
  }
  return seen;
}

std::vector<double> ToDouble(const std::vector<float>& v) { return {v.begin(), v.end()}; }

TEST_F(MixedPrecisionGpuTest, AttentionBf16WithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  for (const AttentionCase& c : kAttentionCases) {
    SCOPED_TRACE(Describe(c));
    const AttentionInputs in = MakeAttentionInputs(rng, c);
    const int64_t rows = c.q_len * c.q_heads, out_elems = rows * c.head_dim;
    AttentionParams p = MakeAttentionParams(c, in);
    // fp32 reference on the unrounded inputs.
    std::vector<float> ref_out(out_elems), ref_lse(rows);
    p.q = in.q.data(), p.k = in.k.data(), p.v = in.v.data();
    p.out = ref_out.data(), p.lse = ref_lse.data();
    ASSERT_TRUE(cpu::Attention(p).ok());
    // Plain bf16: rounded inputs, fp32 math, out rounded to bf16 (lse is an
    // fp32 output of the op, so the plain lse is left unrounded: stricter).
    const auto qr = gpu_test::RoundedBf16(in.q), kr = gpu_test::RoundedBf16(in.k),
               vr = gpu_test::RoundedBf16(in.v);
    std::vector<float> plain_out(out_elems), plain_lse(rows);
    p.q = qr.data(), p.k = kr.data(), p.v = vr.data();
    p.out = plain_out.data(), p.lse = plain_lse.data();
    ASSERT_TRUE(cpu::Attention(p).ok());
    plain_out = gpu_test::RoundedBf16(plain_out);

    DeviceArray<uint16_t> d_q(gpu_test::ToBf16(in.q)), d_k(gpu_test::ToBf16(in.k)),
        d_v(gpu_test::ToBf16(in.v));
    DeviceArray<float> d_out(NaNs(out_elems)), d_lse(NaNs(rows));
    p.q = p.k = p.v = nullptr;  // ignored: the typed pointers below are read
    p.out = d_out.get();
    p.lse = c.with_lse ? d_lse.get() : nullptr;
    const absl::Status status =
        cuda::MixedAttention(p, ElementType::kBF16, d_q.get(), c.kv_len > 0 ? d_k.get() : nullptr,
                             c.kv_len > 0 ? d_v.get() : nullptr, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const std::vector<float> got_out = d_out.Download();
    const std::vector<float> got_lse = d_lse.Download();

    // Rows that see no key: out exactly 0 and lse exactly -inf.
    int64_t unseen = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (ref_lse[r] != -INFINITY) continue;
      ++unseen;
      for (int64_t d = 0; d < c.head_dim; ++d) {
        ASSERT_EQ(got_out[r * c.head_dim + d], 0.0f) << "row " << r << " sees no key";
      }
      if (c.with_lse) {
        ASSERT_EQ(got_lse[r], -INFINITY) << "row " << r;
      }
    }
    if (!c.with_lse) {
      for (float l : got_lse) ASSERT_TRUE(std::isnan(l)) << "lse written though null";
    }
    if (unseen == rows) {
      std::printf("MixedAttention bf16: %s: no row sees a key; out 0 and lse -inf exactly\n",
                  Describe(c).c_str());
      continue;
    }
    // The rows that see keys: the 2x rule on out, and on lse where returned.
    const auto got_seen = SeenRows(got_out, ref_lse, c.head_dim);
    for (float x : got_seen) ASSERT_TRUE(std::isfinite(x));
    const auto ref_seen = ToDouble(SeenRows(ref_out, ref_lse, c.head_dim));
    const double err = gpu_test::RelativeL2(got_seen, ref_seen);
    const double plain_err =
        gpu_test::RelativeL2(SeenRows(plain_out, ref_lse, c.head_dim), ref_seen);
    double lse_err = 0.0, plain_lse_err = 0.0;
    if (c.with_lse) {
      const auto ref_lse_seen = ToDouble(SeenRows(ref_lse, ref_lse, 1));
      lse_err = gpu_test::RelativeL2(SeenRows(got_lse, ref_lse, 1), ref_lse_seen);
      plain_lse_err = gpu_test::RelativeL2(SeenRows(plain_lse, ref_lse, 1), ref_lse_seen);
    }
    std::printf(
        "MixedAttention bf16: %s: out relative L2 %.3g, plain bf16 %.3g; lse %.3g, "
        "plain %.3g; %lld of %lld rows see nothing\n",
        Describe(c).c_str(), err, plain_err, lse_err, plain_lse_err, static_cast<long long>(unseen),
        static_cast<long long>(rows));
    EXPECT_GT(plain_err, 0.0);
    EXPECT_LE(err, 2.0 * plain_err) << "out";
    if (c.with_lse) {
      EXPECT_GT(plain_lse_err, 0.0);
      EXPECT_LE(lse_err, 2.0 * plain_lse_err) << "lse";
    }
  }
}

TEST_F(MixedPrecisionGpuTest, AttentionF32IsAttention) {
  std::mt19937 rng(std::random_device{}());
  for (const AttentionCase& c : kAttentionCases) {
    SCOPED_TRACE(Describe(c));
    const AttentionInputs in = MakeAttentionInputs(rng, c);
    const int64_t rows = c.q_len * c.q_heads, out_elems = rows * c.head_dim;
    DeviceArray<float> d_q(in.q), d_k(in.k), d_v(in.v);
    DeviceArray<float> want_out(NaNs(out_elems)), want_lse(NaNs(rows));
    DeviceArray<float> got_out(NaNs(out_elems)), got_lse(NaNs(rows));
    AttentionParams p = MakeAttentionParams(c, in);
    p.q = d_q.get();
    p.k = c.kv_len > 0 ? d_k.get() : nullptr;
    p.v = c.kv_len > 0 ? d_v.get() : nullptr;
    p.out = want_out.get();
    p.lse = c.with_lse ? want_lse.get() : nullptr;
    absl::Status status = cuda::Attention(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const void* q = p.q;
    const void* k = p.k;
    const void* v = p.v;
    p.q = p.k = p.v = nullptr;  // ignored
    p.out = got_out.get();
    p.lse = c.with_lse ? got_lse.get() : nullptr;
    status = cuda::MixedAttention(p, ElementType::kF32, q, k, v, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(SameBits(got_out.Download(), want_out.Download())) << "out";
    EXPECT_TRUE(SameBits(got_lse.Download(), want_lse.Download())) << "lse";
  }
  // One sanity check that the fp32 path is the op: against the CPU too.
  const AttentionCase c = kAttentionCases[0];
  const AttentionInputs in = MakeAttentionInputs(rng, c);
  const int64_t rows = c.q_len * c.q_heads, out_elems = rows * c.head_dim;
  std::vector<float> want_out(out_elems), want_lse(rows);
  AttentionParams p = MakeAttentionParams(c, in);
  p.q = in.q.data(), p.k = in.k.data(), p.v = in.v.data();
  p.out = want_out.data(), p.lse = want_lse.data();
  ASSERT_TRUE(cpu::Attention(p).ok());
  DeviceArray<float> d_q(in.q), d_k(in.k), d_v(in.v), d_out(NaNs(out_elems)), d_lse(NaNs(rows));
  p.q = p.k = p.v = nullptr;
  p.out = d_out.get(), p.lse = d_lse.get();
  ASSERT_TRUE(
      cuda::MixedAttention(p, ElementType::kF32, d_q.get(), d_k.get(), d_v.get(), nullptr).ok());
  EXPECT_TRUE(CloseInRelativeL2(d_out.Download(), want_out, kTolerance));
  EXPECT_TRUE(CloseAllowingNegInf(d_lse.Download(), want_lse, kTolerance));
}

TEST_F(MixedPrecisionGpuTest, AttentionRejectsBadParams) {
  DeviceArray<uint16_t> d_buf(std::vector<uint16_t>(4096, 0));
  DeviceArray<float> d_out(NaNs(1024));
  AttentionParams p;
  p.q_len = 2;
  p.kv_len = 2;
  p.num_q_heads = 2;
  p.num_kv_heads = 1;
  p.head_dim = 8;
  p.scale = 0.5f;
  p.out = d_out.get();
  const void* buf = d_buf.get();
  for (ElementType type : {ElementType::kF32, ElementType::kBF16}) {
    EXPECT_TRUE(cuda::MixedAttention(p, type, buf, buf, buf, nullptr).ok());
    EXPECT_TRUE(IsInvalidArgumentMentioning(
        cuda::MixedAttention(p, type, nullptr, buf, buf, nullptr), "q must not be null"));
    EXPECT_TRUE(IsInvalidArgumentMentioning(
        cuda::MixedAttention(p, type, buf, buf, nullptr, nullptr), "v must not be null"));
    AttentionParams bad = p;
    bad.k_stride = 4;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MixedAttention(bad, type, buf, buf, buf, nullptr),
                                            "k_stride"));
    bad = p;
    bad.num_kv_heads = 3;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MixedAttention(bad, type, buf, buf, buf, nullptr),
                                            "num_kv_heads"));
    bad = p;
    bad.head_dim = 300;
    bad.q_len = bad.kv_len = 1;
    bad.num_q_heads = bad.num_kv_heads = 1;
    EXPECT_EQ(cuda::MixedAttention(bad, type, buf, buf, buf, nullptr).code(),
              absl::StatusCode::kUnimplemented);
  }
  EXPECT_TRUE(IsInvalidArgumentMentioning(
      cuda::MixedAttention(p, static_cast<ElementType>(7), buf, buf, buf, nullptr), "type"));
}

}  // namespace
}  // namespace tessera
