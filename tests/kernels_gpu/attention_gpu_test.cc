// Attention on CUDA for both operand types. fp32 against the CPU reference:
// GQA, causal by global position (queries after, before and overlapping the
// keys), rows that see no key (out 0, lse -inf), odd head dims, strides,
// kv_len 0; AttentionMerge with -inf partials. bf16 q/k/v take the Hopper
// tensor-core kernel (kernels/cuda/flash_attention_sm90.cu) when head_dim is 64
// or 128 and rows are 16-byte aligned, else the CUDA-core kernel, which widens
// them as they are staged and so is bit-identical to its fp32 run on the
// rounded inputs. Both are held, by the flash-attention rule, within 2x the
// error of a plain implementation that rounds its inputs and its output to
// bf16, both measured against the fp32 reference on the unrounded inputs; the
// tensor-core kernel is checked in each of its variants
// (TESSERA_ATTENTION_KERNEL), on tile-awkward lengths and ring-block positions.
// The split-KV kernels (kernels/cuda/decode_attention.cu), forced, are held to
// the same rules in both types on decode shapes awkward for their splits,
// tiles and row blocks, against the other kernels on the 8B decode shape, for
// determinism, and for the workspace rule of cuda::AttentionWorkspaceBytes.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/attention.h"
#include "kernels/cuda/decode_attention.h"
#include "kernels/cuda/flash_attention_sm90.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::CloseAllowingNegInf;
using gpu_test::CloseInRelativeL2;
using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::NaNs;
using gpu_test::RandomFloats;
using gpu_test::RandomRows;
using kernel_test::IsInvalidArgumentMentioning;

constexpr double kTolerance = 1e-5;

class AttentionGpuTest : public GpuTest {};

struct AttentionCase {
  int64_t q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, kv_pos0;
  bool causal;
  int64_t pad;  // extra floats per token row of q, k, v
};

TEST_F(AttentionGpuTest, MatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const AttentionCase& c : {
           AttentionCase{1, 1, 1, 1, 1, 0, 0, true, 0},
           AttentionCase{5, 5, 4, 2, 64, 0, 0, true, 0},
           AttentionCase{37, 100, 4, 1, 128, 63, 0, true, 3},     // queries after most keys
           AttentionCase{130, 130, 6, 2, 80, 0, 0, true, 0},       // odd head_dim, 3 q tiles
           AttentionCase{70, 45, 2, 2, 16, 0, 0, false, 1},        // not causal
           AttentionCase{40, 50, 2, 1, 64, 10, 30, true, 0},       // first 20 rows see nothing
           AttentionCase{9, 20, 2, 1, 64, 0, 100, true, 0},        // no row sees a key
           AttentionCase{33, 0, 2, 1, 64, 0, 0, true, 0},          // kv_len 0
           AttentionCase{100, 150, 4, 2, 256, 50, 0, true, 2},     // head_dim 256 tiles
           AttentionCase{200, 200, 3, 3, 200, 0, 0, true, 0},      // head_dim 200
           AttentionCase{1024, 1024, 8, 2, 128, 0, 0, true, 0},    // many key tiles
           AttentionCase{1, 777, 8, 2, 128, 776, 0, true, 0},      // decode row
       }) {
    SCOPED_TRACE(testing::Message() << "Lq " << c.q_len << " Lk " << c.kv_len << " Hq "
                                    << c.q_heads << " Hkv " << c.kv_heads << " D " << c.head_dim
                                    << " q0 " << c.q_pos0 << " k0 " << c.kv_pos0);
    const int64_t q_stride = c.q_heads * c.head_dim + c.pad;
    const int64_t kv_stride = c.kv_heads * c.head_dim + c.pad;
    const auto q = RandomRows(rng, c.q_len, c.q_heads * c.head_dim, q_stride);
    const auto k = RandomRows(rng, c.kv_len, c.kv_heads * c.head_dim, kv_stride);
    const auto v = RandomRows(rng, c.kv_len, c.kv_heads * c.head_dim, kv_stride);
    const int64_t out_elems = c.q_len * c.q_heads * c.head_dim, rows = c.q_len * c.q_heads;
    std::vector<float> want_out(out_elems), want_lse(rows);
    AttentionParams p{c.q_len, c.kv_len, c.q_heads, c.kv_heads, c.head_dim, ElementType::kF32,
                      q.data(), q_stride, k.data(), kv_stride, v.data(), kv_stride,
                      c.q_pos0, c.kv_pos0, c.causal, 1.0f / std::sqrt(float(c.head_dim)),
                      want_out.data(), want_lse.data()};
    ASSERT_TRUE(cpu::Attention(p).ok());
    DeviceArray<float> d_q(q), d_k(k), d_v(v), d_out(NaNs(out_elems)), d_lse(NaNs(rows));
    p.q = d_q.get();
    p.k = c.kv_len > 0 ? d_k.get() : nullptr;
    p.v = c.kv_len > 0 ? d_v.get() : nullptr;
    p.out = d_out.get();
    p.lse = d_lse.get();
    const absl::Status status = cuda::Attention(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const auto got_out = d_out.Download();
    bool any_seen = false;
    for (float l : want_lse) any_seen |= l != -INFINITY;
    if (any_seen) {
      EXPECT_TRUE(CloseInRelativeL2(got_out, want_out, kTolerance)) << "out";
    } else {
      EXPECT_EQ(got_out, want_out);  // all zeros, exactly
    }
    EXPECT_TRUE(CloseAllowingNegInf(d_lse.Download(), want_lse, kTolerance)) << "lse";
  }
}

TEST_F(AttentionGpuTest, MergeMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (auto [rows, head_dim] : {std::pair<int64_t, int64_t>{1, 1}, {7, 64}, {1000, 128}, {33, 200}}) {
    auto out = RandomFloats(rng, rows * head_dim);
    auto lse = RandomFloats(rng, rows, -5.0f, 5.0f);
    const auto part_out = RandomFloats(rng, rows * head_dim);
    auto part_lse = RandomFloats(rng, rows, -5.0f, 5.0f);
    // Every combination of "saw nothing" on either side.
    for (int64_t r = 0; r < rows; ++r) {
      if (r % 4 == 1) lse[r] = -INFINITY;
      if (r % 4 == 2) part_lse[r] = -INFINITY;
      if (r % 4 == 3) lse[r] = part_lse[r] = -INFINITY;
    }
    if (rows == 1) lse[0] = 1.0f, part_lse[0] = 0.5f;
    std::vector<float> want_out = out, want_lse = lse;
    AttentionMergeParams p{rows, head_dim, want_out.data(), want_lse.data(), part_out.data(),
                           part_lse.data()};
    ASSERT_TRUE(cpu::AttentionMerge(p).ok());
    DeviceArray<float> d_out(out), d_lse(lse), d_part_out(part_out), d_part_lse(part_lse);
    p.out = d_out.get();
    p.lse = d_lse.get();
    p.part_out = d_part_out.get();
    p.part_lse = d_part_lse.get();
    ASSERT_TRUE(cuda::AttentionMerge(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(d_out.Download(), want_out, kTolerance)) << rows;
    EXPECT_TRUE(CloseAllowingNegInf(d_lse.Download(), want_lse, kTolerance)) << rows;
  }
}

TEST_F(AttentionGpuTest, Bf16PrefillWithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  const int64_t L = 512, Hq = 4, Hkv = 2, D = 128;
  const auto q = RandomFloats(rng, L * Hq * D, -2.0f, 2.0f);
  const auto k = RandomFloats(rng, L * Hkv * D, -2.0f, 2.0f);
  const auto v = RandomFloats(rng, L * Hkv * D);
  AttentionParams p{L, L, Hq, Hkv, D, ElementType::kF32, nullptr, 0, nullptr, 0, nullptr, 0, 0, 0,
                    true, 1.0f / std::sqrt(float(D)), nullptr, nullptr};
  // fp32 reference on the unrounded inputs.
  std::vector<float> ref(L * Hq * D);
  p.q = q.data(), p.k = k.data(), p.v = v.data(), p.out = ref.data();
  ASSERT_TRUE(cpu::Attention(p).ok());
  // Plain bf16: rounded inputs, fp32 math, output rounded to bf16.
  const auto qr = gpu_test::RoundedBf16(q), kr = gpu_test::RoundedBf16(k),
             vr = gpu_test::RoundedBf16(v);
  std::vector<float> plain(L * Hq * D);
  p.q = qr.data(), p.k = kr.data(), p.v = vr.data(), p.out = plain.data();
  ASSERT_TRUE(cpu::Attention(p).ok());
  plain = gpu_test::RoundedBf16(plain);
  DeviceArray<uint16_t> d_q(gpu_test::ToBf16(q)), d_k(gpu_test::ToBf16(k)),
      d_v(gpu_test::ToBf16(v));
  DeviceArray<float> d_out(NaNs(L * Hq * D));
  p.type = ElementType::kBF16;
  p.q = d_q.get();
  p.k = d_k.get();
  p.v = d_v.get();
  p.out = d_out.get();
  const absl::Status status = cuda::Attention(p, nullptr);
  ASSERT_TRUE(status.ok()) << status;
  const auto got = d_out.Download();
  const std::vector<double> ref64(ref.begin(), ref.end());
  for (float x : got) ASSERT_TRUE(std::isfinite(x));
  const double err = gpu_test::RelativeL2(got, ref64);
  const double plain_err = gpu_test::RelativeL2(plain, ref64);
  std::printf("Attention bf16: relative L2 %.3g, plain bf16 %.3g\n", err, plain_err);
  EXPECT_GT(plain_err, 0.0);
  EXPECT_LE(err, 2.0 * plain_err);
}

// Bitwise equality, so -inf, signed zeros and (unexpected) NaNs all count.
bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

// ------------------------------------------------ both types, awkward shapes

struct TypedCase {
  int64_t q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, kv_pos0;
  bool causal, with_lse;
  int64_t pad;  // extra elements per token row of q, k, v
};

const TypedCase kTypedCases[] = {
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

std::string Describe(const TypedCase& c) {
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

AttentionInputs MakeAttentionInputs(std::mt19937& rng, const TypedCase& c) {
  AttentionInputs in;
  in.q_stride = c.q_heads * c.head_dim + c.pad;
  in.kv_stride = c.kv_heads * c.head_dim + c.pad;
  in.q = RandomRows(rng, c.q_len, c.q_heads * c.head_dim, in.q_stride, -2.0f, 2.0f);
  in.k = RandomRows(rng, c.kv_len, c.kv_heads * c.head_dim, in.kv_stride, -2.0f, 2.0f);
  in.v = RandomRows(rng, c.kv_len, c.kv_heads * c.head_dim, in.kv_stride);
  return in;
}

AttentionParams MakeAttentionParams(const TypedCase& c, const AttentionInputs& in) {
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

// The references of one bf16 case: fp32 on the unrounded inputs, and plain
// bf16 (rounded inputs, fp32 math, out rounded to bf16; lse is an fp32 output
// of the op, so the plain lse is left unrounded: stricter).
struct Bf16References {
  std::vector<float> ref_out, ref_lse, plain_out, plain_lse;
};

Bf16References MakeBf16References(const TypedCase& c, const AttentionInputs& in) {
  const int64_t rows = c.q_len * c.q_heads, out_elems = rows * c.head_dim;
  Bf16References r{std::vector<float>(out_elems), std::vector<float>(rows),
                   std::vector<float>(out_elems), std::vector<float>(rows)};
  AttentionParams p = MakeAttentionParams(c, in);
  p.q = in.q.data(), p.k = in.k.data(), p.v = in.v.data();
  p.out = r.ref_out.data(), p.lse = r.ref_lse.data();
  EXPECT_TRUE(cpu::Attention(p).ok());
  const auto qr = gpu_test::RoundedBf16(in.q), kr = gpu_test::RoundedBf16(in.k),
             vr = gpu_test::RoundedBf16(in.v);
  p.q = qr.data(), p.k = kr.data(), p.v = vr.data();
  p.out = r.plain_out.data(), p.lse = r.plain_lse.data();
  EXPECT_TRUE(cpu::Attention(p).ok());
  r.plain_out = gpu_test::RoundedBf16(r.plain_out);
  return r;
}

// Rows that see no key give out exactly 0 and lse exactly -inf; a null lse is
// never written (got_lse was poisoned with NaN); the rows that see keys keep
// the 2x rule on out, and on lse where returned.
void ExpectWithinTwicePlainBf16(const TypedCase& c, const Bf16References& r,
                                const std::vector<float>& got_out,
                                const std::vector<float>& got_lse, const char* kernel) {
  const int64_t rows = c.q_len * c.q_heads;
  int64_t unseen = 0;
  for (int64_t row = 0; row < rows; ++row) {
    if (r.ref_lse[row] != -INFINITY) continue;
    ++unseen;
    for (int64_t d = 0; d < c.head_dim; ++d) {
      ASSERT_EQ(got_out[row * c.head_dim + d], 0.0f) << "row " << row << " sees no key";
    }
    if (c.with_lse) {
      ASSERT_EQ(got_lse[row], -INFINITY) << "row " << row;
    }
  }
  if (!c.with_lse) {
    for (float l : got_lse) ASSERT_TRUE(std::isnan(l)) << "lse written though null";
  }
  if (unseen == rows) {
    std::printf("Attention bf16 [%s]: %s: no row sees a key; out 0 and lse -inf exactly\n",
                kernel, Describe(c).c_str());
    return;
  }
  const auto got_seen = SeenRows(got_out, r.ref_lse, c.head_dim);
  for (float x : got_seen) ASSERT_TRUE(std::isfinite(x));
  const auto ref_seen = ToDouble(SeenRows(r.ref_out, r.ref_lse, c.head_dim));
  const double err = gpu_test::RelativeL2(got_seen, ref_seen);
  const double plain_err =
      gpu_test::RelativeL2(SeenRows(r.plain_out, r.ref_lse, c.head_dim), ref_seen);
  double lse_err = 0.0, plain_lse_err = 0.0;
  if (c.with_lse) {
    const auto ref_lse_seen = ToDouble(SeenRows(r.ref_lse, r.ref_lse, 1));
    lse_err = gpu_test::RelativeL2(SeenRows(got_lse, r.ref_lse, 1), ref_lse_seen);
    plain_lse_err = gpu_test::RelativeL2(SeenRows(r.plain_lse, r.ref_lse, 1), ref_lse_seen);
  }
  std::printf(
      "Attention bf16 [%s]: %s: out relative L2 %.3g, plain bf16 %.3g; lse %.3g, "
      "plain %.3g; %lld of %lld rows see nothing\n",
      kernel, Describe(c).c_str(), err, plain_err, lse_err, plain_lse_err,
      static_cast<long long>(unseen), static_cast<long long>(rows));
  EXPECT_GT(plain_err, 0.0);
  EXPECT_LE(err, 2.0 * plain_err) << "out";
  if (c.with_lse) {
    EXPECT_GT(plain_lse_err, 0.0);
    EXPECT_LE(lse_err, 2.0 * plain_lse_err) << "lse";
  }
}

// Inputs as a device array stores them: bf16 bits (uint16_t) or fp32.
std::vector<uint16_t> Stored(const std::vector<float>& v, uint16_t) { return gpu_test::ToBf16(v); }
std::vector<float> Stored(const std::vector<float>& v, float) { return v; }

// Device copies of a case's inputs (Element: uint16_t for bf16, or float) and
// NaN-poisoned outputs, and the params that point at them.
template <typename Element>
struct DeviceCase {
  DeviceArray<Element> q, k, v;
  DeviceArray<float> out, lse;
  AttentionParams p;

  DeviceCase(const TypedCase& c, const AttentionInputs& in)
      : q(Stored(in.q, Element{})),
        k(Stored(in.k, Element{})),
        v(Stored(in.v, Element{})),
        out(NaNs(c.q_len * c.q_heads * c.head_dim)),
        lse(NaNs(c.q_len * c.q_heads)),
        p(MakeAttentionParams(c, in)) {
    p.type = std::is_same_v<Element, float> ? ElementType::kF32 : ElementType::kBF16;
    p.q = q.get();
    p.k = c.kv_len > 0 ? k.get() : nullptr;
    p.v = c.kv_len > 0 ? v.get() : nullptr;
    p.out = out.get();
    p.lse = c.with_lse ? lse.get() : nullptr;
  }
};
using Bf16DeviceCase = DeviceCase<uint16_t>;

TEST_F(AttentionGpuTest, Bf16WithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  for (const TypedCase& c : kTypedCases) {
    SCOPED_TRACE(Describe(c));
    const AttentionInputs in = MakeAttentionInputs(rng, c);
    const Bf16References refs = MakeBf16References(c, in);
    Bf16DeviceCase dev(c, in);
    const absl::Status status = cuda::Attention(dev.p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    ExpectWithinTwicePlainBf16(c, refs, dev.out.Download(), dev.lse.Download(), "default");
  }
}

// Picks the attention kernel (TESSERA_ATTENTION_KERNEL) for one scope.
class ScopedAttentionKernel {
 public:
  explicit ScopedAttentionKernel(const char* name) {
    const char* old = std::getenv(kVariable);
    had_old_ = old != nullptr;
    if (had_old_) old_ = old;
    setenv(kVariable, name, 1);
  }
  ~ScopedAttentionKernel() {
    if (had_old_) {
      setenv(kVariable, old_.c_str(), 1);
    } else {
      unsetenv(kVariable);
    }
  }

 private:
  static constexpr const char* kVariable = "TESSERA_ATTENTION_KERNEL";
  bool had_old_ = false;
  std::string old_;
};

// The CUDA-core kernel serves both types: bf16 operands are widened exactly as
// they are staged and everything after is the fp32 path, so bf16 q/k/v give
// bit for bit what fp32 q/k/v holding the same (rounded) values give.
TEST_F(AttentionGpuTest, Bf16IsTheF32KernelOnRoundedInputs) {
  const ScopedAttentionKernel ffma("ffma");
  std::mt19937 rng(std::random_device{}());
  for (const TypedCase& c : kTypedCases) {
    SCOPED_TRACE(Describe(c));
    const AttentionInputs in = MakeAttentionInputs(rng, c);
    const int64_t rows = c.q_len * c.q_heads, out_elems = rows * c.head_dim;
    DeviceArray<float> d_q(gpu_test::RoundedBf16(in.q)), d_k(gpu_test::RoundedBf16(in.k)),
        d_v(gpu_test::RoundedBf16(in.v));
    DeviceArray<uint16_t> d_q16(gpu_test::ToBf16(in.q)), d_k16(gpu_test::ToBf16(in.k)),
        d_v16(gpu_test::ToBf16(in.v));
    DeviceArray<float> want_out(NaNs(out_elems)), want_lse(NaNs(rows));
    DeviceArray<float> got_out(NaNs(out_elems)), got_lse(NaNs(rows));
    AttentionParams p = MakeAttentionParams(c, in);
    p.type = ElementType::kF32;
    p.q = d_q.get();
    p.k = c.kv_len > 0 ? d_k.get() : nullptr;
    p.v = c.kv_len > 0 ? d_v.get() : nullptr;
    p.out = want_out.get();
    p.lse = c.with_lse ? want_lse.get() : nullptr;
    absl::Status status = cuda::Attention(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    p.type = ElementType::kBF16;
    p.q = d_q16.get();
    p.k = c.kv_len > 0 ? d_k16.get() : nullptr;
    p.v = c.kv_len > 0 ? d_v16.get() : nullptr;
    p.out = got_out.get();
    p.lse = c.with_lse ? got_lse.get() : nullptr;
    status = cuda::Attention(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(SameBits(got_out.Download(), want_out.Download())) << "out";
    EXPECT_TRUE(SameBits(got_lse.Download(), want_lse.Download())) << "lse";
  }
}

// ------------------------------------------ the tensor-core kernel (Hopper)

// Row strides are multiples of 8 elements (16 bytes), as the kernel needs; the
// lengths straddle its 128-row and 128-key tiles; positions place the keys as
// ring attention's blocks do (before, on and after the queries' diagonal).
const TypedCase kTensorCoreCases[] = {
    {1, 1, 4, 4, 128, 0, 0, true, true, 0},         // one token, MHA
    {77, 77, 8, 2, 128, 0, 0, true, true, 0},       // under one tile, GQA 4:1
    {200, 200, 4, 4, 64, 0, 0, true, true, 8},      // head_dim 64, padded rows
    {1000, 1000, 8, 2, 128, 0, 0, true, false, 0},  // 8 tiles each way, no lse
    {129, 128, 4, 1, 128, 0, 0, true, true, 0},     // one row past a tile
    {300, 1000, 4, 1, 128, 700, 0, true, true, 0},  // queries after most keys
    {256, 200, 4, 1, 128, 1000, 0, true, true, 0},  // ring: keys all before the queries
    {200, 200, 4, 1, 64, 400, 400, true, true, 0},  // ring: the diagonal block
    {100, 150, 4, 1, 128, 0, 500, true, true, 0},   // ring: keys all after (lse -inf)
    {300, 200, 4, 2, 128, 120, 20, true, true, 8},  // queries after keys start, Lq != Lk
    {200, 150, 4, 2, 128, 0, 70, true, true, 0},    // rows 0..69 see nothing
    {130, 257, 4, 1, 64, 0, 0, false, true, 0},     // not causal
    {77, 1000, 4, 4, 128, 0, 0, false, false, 8},   // not causal, many key tiles
    {1, 777, 8, 2, 128, 776, 0, true, true, 0},     // decode row
    {20, 0, 4, 1, 128, 0, 0, true, true, 0},        // kv_len 0 (served by the other kernel)
};

// Every schedule of the tensor-core kernel on every case; they order the same
// arithmetic differently, so they must agree bit for bit (a race would show
// here first).
TEST_F(AttentionGpuTest, TensorCoreKernelWithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  for (const TypedCase& c : kTensorCoreCases) {
    SCOPED_TRACE(Describe(c));
    const AttentionInputs in = MakeAttentionInputs(rng, c);
    const Bf16References refs = MakeBf16References(c, in);
    std::vector<float> first_out, first_lse;
    for (const char* kernel : {"inorder", "pingpong"}) {
      SCOPED_TRACE(kernel);
      const ScopedAttentionKernel choice(kernel);
      Bf16DeviceCase dev(c, in);
      EXPECT_EQ(cuda_flash::FlashAttentionSm90Supports(dev.p), c.kv_len > 0);
      const absl::Status status = cuda::Attention(dev.p, nullptr);
      ASSERT_TRUE(status.ok()) << status;
      const std::vector<float> got_out = dev.out.Download();
      const std::vector<float> got_lse = dev.lse.Download();
      ExpectWithinTwicePlainBf16(c, refs, got_out, got_lse, kernel);
      if (first_out.empty()) {
        first_out = got_out;
        first_lse = got_lse;
      } else {
        EXPECT_TRUE(SameBits(got_out, first_out)) << "out differs from the in-order schedule";
        EXPECT_TRUE(SameBits(got_lse, first_lse)) << "lse differs from the in-order schedule";
      }
    }
  }
}

// The same GQA prefill from two views of one fused QKV buffer and from
// separate q, k, v buffers (strides and base offsets the kernel's tensor maps
// must honour) gives the same bits.
TEST_F(AttentionGpuTest, TensorCoreKernelReadsFusedAndSeparateBuffersAlike) {
  std::mt19937 rng(std::random_device{}());
  const int64_t L = 333, Hq = 8, Hkv = 2, D = 128, width = (Hq + 2 * Hkv) * D;
  const auto fused = gpu_test::ToBf16(RandomFloats(rng, L * width, -2.0f, 2.0f));  // (L, width)
  std::vector<uint16_t> q(L * Hq * D), k(L * Hkv * D), v(L * Hkv * D);
  for (int64_t t = 0; t < L; ++t) {
    std::memcpy(&q[t * Hq * D], &fused[t * width], sizeof(uint16_t) * Hq * D);
    std::memcpy(&k[t * Hkv * D], &fused[t * width + Hq * D], sizeof(uint16_t) * Hkv * D);
    std::memcpy(&v[t * Hkv * D], &fused[t * width + (Hq + Hkv) * D], sizeof(uint16_t) * Hkv * D);
  }
  DeviceArray<uint16_t> d_fused(fused), d_q(q), d_k(k), d_v(v);
  DeviceArray<float> fused_out(NaNs(L * Hq * D)), fused_lse(NaNs(L * Hq));
  DeviceArray<float> split_out(NaNs(L * Hq * D)), split_lse(NaNs(L * Hq));
  AttentionParams p;
  p.q_len = p.kv_len = L;
  p.num_q_heads = Hq;
  p.num_kv_heads = Hkv;
  p.head_dim = D;
  p.type = ElementType::kBF16;
  p.scale = 1.0f / std::sqrt(static_cast<float>(D));
  p.q = d_fused.get();
  p.k = d_fused.get() + Hq * D;
  p.v = d_fused.get() + (Hq + Hkv) * D;
  p.q_stride = p.k_stride = p.v_stride = width;
  p.out = fused_out.get();
  p.lse = fused_lse.get();
  ASSERT_TRUE(cuda_flash::FlashAttentionSm90Supports(p));
  ASSERT_TRUE(cuda::Attention(p, nullptr).ok());
  p.q = d_q.get();
  p.k = d_k.get();
  p.v = d_v.get();
  p.q_stride = p.k_stride = p.v_stride = 0;
  p.out = split_out.get();
  p.lse = split_lse.get();
  ASSERT_TRUE(cuda::Attention(p, nullptr).ok());
  const auto out = fused_out.Download();
  for (float x : out) ASSERT_TRUE(std::isfinite(x));
  EXPECT_TRUE(SameBits(out, split_out.Download()));
  EXPECT_TRUE(SameBits(fused_lse.Download(), split_lse.Download()));
}

// ------------------------------------------ split-KV (decode-shaped calls)

// Shapes the split-KV kernels take (head_dim 64 or 128, row pads that keep K/V
// rows 16-byte aligned in both types), around their boundaries: no key, one
// key, lengths off every tile (64 keys) and step (16), 1 to 16 query rows,
// GQA 1 to 8 (1 to 4 MMA tiles of rows, one or two row blocks), queries
// before, inside and past the keys, keys not at 0, rows that see nothing of a
// split or of any key. The split counts follow the device (one wave of CTAs):
// on a 132-SM H200 they run from 1 to 264.
const TypedCase kSplitKvCases[] = {
    {1, 0, 4, 1, 128, 0, 0, true, true, 0},         // kv_len 0: out 0, lse -inf
    {1, 1, 8, 8, 64, 0, 0, true, true, 0},          // one key, GQA 1
    {2, 1, 8, 8, 64, 5, 5, true, true, 8},          // one key at the first query's position
    {1, 1000, 32, 8, 128, 999, 0, true, true, 0},   // decode row, GQA 4
    {3, 1000, 32, 8, 128, 997, 0, true, false, 8},  // 3 rows, padded rows, no lse
    {16, 3100, 8, 1, 64, 2933, 0, true, true, 0},   // 128 rows: 2 row blocks; rows 0..10 see
                                                    // nothing of the last split (H200)
    {16, 777, 8, 1, 128, 300, 0, true, true, 8},    // queries inside the keys: rows see 301..316 of 777
    {7, 333, 8, 2, 64, 400, 100, true, true, 8},    // keys not at 0, queries past the last
    {9, 2500, 4, 1, 128, 5000, 0, true, false, 0},  // queries past the keys, no lse
    {4, 200, 8, 2, 128, 0, 100, true, true, 0},     // every key after every query: out 0, lse -inf
    {6, 300, 8, 2, 64, 102, 100, true, true, 8},    // rows see 3..8 keys
    {2, 5000, 4, 4, 128, 0, 0, false, true, 8},     // not causal
    {12, 4100, 16, 4, 64, 4095, 0, true, true, 0},  // 48 rows (3 of 4 MMA tiles)
    {5, 129, 20, 4, 128, 124, 0, true, true, 0},    // 25 rows; 2 splits
    {1, 70000, 8, 1, 128, 69999, 0, true, true, 0}, // long: a wave of splits
};

// cuda::Attention with the workspace cuda::AttentionWorkspaceBytes asks for,
// poisoned with NaN (a partial read before it is written shows).
absl::Status AttentionWithWorkspace(AttentionParams p) {
  const int64_t bytes = cuda::AttentionWorkspaceBytes(p);
  DeviceArray<float> workspace(NaNs((bytes + 3) / 4));
  p.workspace = workspace.get();
  p.workspace_bytes = bytes;
  return cuda::Attention(p, nullptr);
}

// fp32 against the CPU reference: rows that see no key give out exactly 0 and
// lse -inf, the rest are within kTolerance; a null lse is never written.
void ExpectMatchesCpuF32(const TypedCase& c, const AttentionInputs& in,
                         const std::vector<float>& got_out, const std::vector<float>& got_lse) {
  const int64_t rows = c.q_len * c.q_heads;
  std::vector<float> want_out(rows * c.head_dim), want_lse(rows);
  AttentionParams p = MakeAttentionParams(c, in);
  p.q = in.q.data(), p.k = in.k.data(), p.v = in.v.data();
  p.out = want_out.data(), p.lse = want_lse.data();
  ASSERT_TRUE(cpu::Attention(p).ok());
  for (int64_t row = 0; row < rows; ++row) {
    if (want_lse[row] != -INFINITY) continue;
    for (int64_t d = 0; d < c.head_dim; ++d) {
      ASSERT_EQ(got_out[row * c.head_dim + d], 0.0f) << "row " << row << " sees no key";
    }
  }
  const auto got_seen = SeenRows(got_out, want_lse, c.head_dim);
  if (!got_seen.empty()) {
    EXPECT_TRUE(CloseInRelativeL2(got_seen, SeenRows(want_out, want_lse, c.head_dim), kTolerance))
        << "out";
  }
  if (c.with_lse) {
    EXPECT_TRUE(CloseAllowingNegInf(got_lse, want_lse, kTolerance)) << "lse";
  } else {
    for (float l : got_lse) ASSERT_TRUE(std::isnan(l)) << "lse written though null";
  }
}

TEST_F(AttentionGpuTest, SplitKvF32MatchesCpu) {
  const ScopedAttentionKernel split_kv("splitkv");
  std::mt19937 rng(std::random_device{}());
  for (const TypedCase& c : kSplitKvCases) {
    SCOPED_TRACE(Describe(c));
    const AttentionInputs in = MakeAttentionInputs(rng, c);
    DeviceCase<float> dev(c, in);
    ASSERT_TRUE(cuda_decode::SplitKvSupports(dev.p));
    const absl::Status status = AttentionWithWorkspace(dev.p);
    ASSERT_TRUE(status.ok()) << status;
    ExpectMatchesCpuF32(c, in, dev.out.Download(), dev.lse.Download());
  }
}

TEST_F(AttentionGpuTest, SplitKvBf16WithinTwiceTheErrorOfPlainBf16) {
  const ScopedAttentionKernel split_kv("splitkv");
  std::mt19937 rng(std::random_device{}());
  for (const TypedCase& c : kSplitKvCases) {
    SCOPED_TRACE(Describe(c));
    const AttentionInputs in = MakeAttentionInputs(rng, c);
    const Bf16References refs = MakeBf16References(c, in);
    Bf16DeviceCase dev(c, in);
    ASSERT_TRUE(cuda_decode::SplitKvSupports(dev.p));
    const absl::Status status = AttentionWithWorkspace(dev.p);
    ASSERT_TRUE(status.ok()) << status;
    ExpectWithinTwicePlainBf16(c, refs, dev.out.Download(), dev.lse.Download(), "splitkv");
  }
}

// out and lse of `kernel` (TESSERA_ATTENTION_KERNEL; "default" names none) on
// a case, given the workspace it asks for.
template <typename Element>
std::pair<std::vector<float>, std::vector<float>> RunKernel(const char* kernel, const TypedCase& c,
                                                           const AttentionInputs& in) {
  const ScopedAttentionKernel choice(kernel);
  DeviceCase<Element> dev(c, in);
  const absl::Status status = AttentionWithWorkspace(dev.p);
  EXPECT_TRUE(status.ok()) << status;
  return {dev.out.Download(), dev.lse.Download()};
}

// The 8B model's decode shape (Hq 32, Hkv 8, D 128; the queries are the last
// q_len of the keys) takes split-KV by default, and its answer is the other
// kernels' answer: in fp32 within kTolerance of the CUDA-core kernel; in bf16
// each kernel within 2x plain bf16 of the fp32 reference, and split-KV as
// close to the CUDA-core kernel (fp32 math on the same rounded inputs) and to
// the tensor-core kernel as plain bf16 is to the reference.
TEST_F(AttentionGpuTest, SplitKvAgreesWithTheOtherKernelsOnTheDecodeShape) {
  std::mt19937 rng(std::random_device{}());
  for (int64_t q_len : {1, 8}) {
    const TypedCase c{q_len, 6000, 32, 8, 128, 6000 - q_len, 0, true, true, 0};
    SCOPED_TRACE(Describe(c));
    const AttentionInputs in = MakeAttentionInputs(rng, c);
    {
      const ScopedAttentionKernel none("default");
      EXPECT_GT(cuda::AttentionWorkspaceBytes(Bf16DeviceCase(c, in).p), 0) << "not split-KV";
    }
    const auto [f32_split_out, f32_split_lse] = RunKernel<float>("default", c, in);
    const auto [f32_ffma_out, f32_ffma_lse] = RunKernel<float>("ffma", c, in);
    EXPECT_TRUE(CloseInRelativeL2(f32_split_out, f32_ffma_out, kTolerance)) << "fp32 out";
    EXPECT_TRUE(CloseInRelativeL2(f32_split_lse, f32_ffma_lse, kTolerance)) << "fp32 lse";

    const Bf16References refs = MakeBf16References(c, in);
    const double plain_err = gpu_test::RelativeL2(refs.plain_out, ToDouble(refs.ref_out));
    const auto [split_out, split_lse] = RunKernel<uint16_t>("default", c, in);
    ExpectWithinTwicePlainBf16(c, refs, split_out, split_lse, "default");
    for (const char* other : {"ffma", "pingpong"}) {
      SCOPED_TRACE(other);
      const auto [out, lse] = RunKernel<uint16_t>(other, c, in);
      ExpectWithinTwicePlainBf16(c, refs, out, lse, other);
      const double diff = gpu_test::RelativeL2(split_out, ToDouble(out));
      std::printf("split-KV vs %s: out relative L2 %.3g (plain bf16 %.3g)\n", other, diff, plain_err);
      EXPECT_LE(diff, plain_err);
    }
  }
}

// No atomics, no order that depends on timing: two runs give the same bits.
TEST_F(AttentionGpuTest, SplitKvIsDeterministic) {
  const ScopedAttentionKernel split_kv("splitkv");
  std::mt19937 rng(std::random_device{}());
  const TypedCase c{4, 20000, 16, 2, 128, 19996, 0, true, true, 0};
  const AttentionInputs in = MakeAttentionInputs(rng, c);
  const auto [first_out, first_lse] = RunKernel<uint16_t>("splitkv", c, in);
  const auto [second_out, second_lse] = RunKernel<uint16_t>("splitkv", c, in);
  for (float x : first_out) ASSERT_TRUE(std::isfinite(x));
  EXPECT_TRUE(SameBits(first_out, second_out));
  EXPECT_TRUE(SameBits(first_lse, second_lse));
}

// A call that needs a workspace and has none, or too little, takes the other
// kernels: their bits exactly.
TEST_F(AttentionGpuTest, SplitKvWithoutItsWorkspaceTakesTheOtherKernels) {
  std::mt19937 rng(std::random_device{}());
  const TypedCase c{2, 3000, 8, 2, 128, 2998, 0, true, true, 0};
  const AttentionInputs in = MakeAttentionInputs(rng, c);
  const auto [want_out, want_lse] = RunKernel<float>("ffma", c, in);
  const ScopedAttentionKernel split_kv("splitkv");
  DeviceCase<float> dev(c, in);
  const int64_t bytes = cuda::AttentionWorkspaceBytes(dev.p);
  ASSERT_GT(bytes, 0);
  ASSERT_TRUE(cuda::Attention(dev.p, nullptr).ok());  // no workspace
  EXPECT_TRUE(SameBits(dev.out.Download(), want_out)) << "none";
  EXPECT_TRUE(SameBits(dev.lse.Download(), want_lse)) << "none";
  DeviceArray<float> small(NaNs(bytes / 4));
  DeviceCase<float> short_of_room(c, in);
  short_of_room.p.workspace = small.get();
  short_of_room.p.workspace_bytes = bytes - 1;
  ASSERT_TRUE(cuda::Attention(short_of_room.p, nullptr).ok());
  EXPECT_TRUE(SameBits(short_of_room.out.Download(), want_out)) << "too little";
  EXPECT_TRUE(SameBits(short_of_room.lse.Download(), want_lse)) << "too little";
}

// The workspace follows the dispatch rule: decode-shaped calls over more keys
// than one split holds ask for one, growing with kv_len; prefill shapes,
// head dims or strides the kernels do not take, forced other kernels and
// invalid params ask for none. Only the params are read.
TEST_F(AttentionGpuTest, AttentionWorkspaceBytesFollowsTheDispatchRule) {
  const ScopedAttentionKernel none("default");
  DeviceArray<float> buf(std::vector<float>(16, 0.0f));  // an aligned device address
  AttentionParams p;
  p.q_len = 1;
  p.kv_len = 65536;
  p.num_q_heads = 32;
  p.num_kv_heads = 8;
  p.head_dim = 128;
  p.type = ElementType::kBF16;
  p.q = p.k = p.v = buf.get();
  p.out = buf.get();
  p.q_position0 = 65535;
  p.scale = 0.088f;
  const int64_t decode = cuda::AttentionWorkspaceBytes(p);
  EXPECT_GT(decode, 0);
  EXPECT_LE(decode, (65536 / 128) * 32 * 129 * 4) << "a split under 128 keys";
  int64_t previous = 0;
  for (int64_t kv = 1; kv <= (int64_t{1} << 20); kv = kv * 5 / 4 + 1) {
    AttentionParams q = p;
    q.kv_len = kv;
    q.q_position0 = kv - 1;
    const int64_t bytes = cuda::AttentionWorkspaceBytes(q);
    EXPECT_GE(bytes, previous) << "kv_len " << kv;
    EXPECT_EQ(bytes == 0, kv <= 128) << "kv_len " << kv;
    previous = bytes;
  }
  AttentionParams q = p;
  q.type = ElementType::kF32;
  EXPECT_GT(cuda::AttentionWorkspaceBytes(q), 0) << "fp32";
  q = p;
  q.q_len = 512;
  EXPECT_EQ(cuda::AttentionWorkspaceBytes(q), 0) << "prefill";
  q = p;
  q.head_dim = 80;
  EXPECT_EQ(cuda::AttentionWorkspaceBytes(q), 0) << "head_dim 80";
  q = p;
  q.k_stride = 8 * 128 + 1;
  EXPECT_EQ(cuda::AttentionWorkspaceBytes(q), 0) << "K rows 2-byte aligned";
  q = p;
  q.num_kv_heads = 3;
  EXPECT_EQ(cuda::AttentionWorkspaceBytes(q), 0) << "invalid";
  q = p;
  q.q_len = 64;
  q.num_q_heads = 8;
  q.num_kv_heads = 4;  // 128 rows a KV head
  EXPECT_EQ(cuda::AttentionWorkspaceBytes(q), 0) << "64 query rows";
  {
    const ScopedAttentionKernel split_kv("splitkv");
    EXPECT_GT(cuda::AttentionWorkspaceBytes(q), 0) << "forced";
  }
  for (const char* other : {"ffma", "inorder", "pingpong"}) {
    const ScopedAttentionKernel choice(other);
    EXPECT_EQ(cuda::AttentionWorkspaceBytes(p), 0) << other;
  }
}

TEST_F(AttentionGpuTest, RejectsBadParamsOfEitherType) {
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
  p.q = p.k = p.v = d_buf.get();
  for (ElementType type : {ElementType::kF32, ElementType::kBF16}) {
    SCOPED_TRACE(ElementTypeName(type));
    p.type = type;
    EXPECT_TRUE(cuda::Attention(p, nullptr).ok());
    AttentionParams bad = p;
    bad.q = nullptr;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Attention(bad, nullptr), "q must not be null"));
    bad = p;
    bad.v = nullptr;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Attention(bad, nullptr), "v must not be null"));
    bad = p;
    bad.k_stride = 4;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Attention(bad, nullptr), "k_stride"));
    bad = p;
    bad.num_kv_heads = 3;
    EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Attention(bad, nullptr), "num_kv_heads"));
    bad = p;
    bad.head_dim = 300;
    bad.q_len = bad.kv_len = 1;
    bad.num_q_heads = bad.num_kv_heads = 1;
    EXPECT_EQ(cuda::Attention(bad, nullptr).code(), absl::StatusCode::kUnimplemented);
  }
  p.type = static_cast<ElementType>(7);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::Attention(p, nullptr), "Attention: type"));
}

}  // namespace
}  // namespace tessera
