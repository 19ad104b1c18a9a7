// CUDA SsdScan with bf16 x, B, C (tensor cores) against the CPU fp32
// reference, by the flash-attention rule (within 2x the error of a plain
// implementation that rounds its inputs and its output to bf16, both measured
// against the reference on the unrounded inputs), over awkward lengths, chunk
// sizes, strides, groups, initial and aliased final states, D null, and the
// nemotronh-8b layer; fp32 at that layer. Both bf16 kernels: the wgmma one
// that SsdScan takes at head_dim 64 with state_size 64 or 128 and aligned rows,
// and the mma.sync one that takes every other shape (and these too under
// TESSERA_SSD_KERNEL=mma). Every test skips cleanly without a device.
#include "kernels/ssd_scan.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::RoundedBf16;
using gpu_test::ToBf16;
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;

// CUDA fp32 against the CPU reference, relative L2 (as tests/kernels_gpu/ssd_gpu_test.cc).
constexpr double kF32Tolerance = 1e-5;
// log_decay never reads x, B, C: fp32 whatever their type.
constexpr double kLogDecayTolerance = 1e-5;
// bf16 against the reference on its own (rounded) inputs: a sanity bound, far
// above the cost of the kernel's bf16 operands; the 2x rule is the real test.
constexpr double kBf16OwnRoundingBound = 2e-2;

class SsdScanGpuTest : public GpuTest {};

struct GpuCase {
  int64_t seq_len, heads, head_dim, groups, state_size, chunk_size;
  int64_t pad;  // NaN elements past each token's row of x, dt, B, C; odd: unaligned bf16 rows
  bool initial_state, alias_final, skip;
};

std::string Describe(const GpuCase& c) {
  return absl::StrCat("L=", c.seq_len, " H=", c.heads, " P=", c.head_dim, " G=", c.groups,
                      " N=", c.state_size, " Q=", c.chunk_size, " pad=", c.pad,
                      " h0=", c.initial_state, " alias=", c.alias_final, " D=", c.skip);
}

struct GpuInputs {
  int64_t x_stride, dt_stride, b_stride, c_stride;  // row pitch in memory
  std::vector<float> x;   // (L, x_stride) holding (L, H, P)
  std::vector<float> dt;  // (L, dt_stride) holding (L, H)
  std::vector<float> A;   // (H)
  std::vector<float> B;   // (L, b_stride) holding (L, G, N)
  std::vector<float> C;   // (L, c_stride) holding (L, G, N)
  std::vector<float> D;   // (H)
  std::vector<float> h0;  // (H, P, N)
};

GpuInputs MakeGpuInputs(const GpuCase& c, std::mt19937& rng) {
  const int64_t hp = c.heads * c.head_dim, gn = c.groups * c.state_size;
  GpuInputs in;
  in.x_stride = hp + c.pad;
  in.dt_stride = c.heads + c.pad;
  in.b_stride = gn + c.pad;
  in.c_stride = gn + c.pad;
  in.x = RandomRows(rng, c.seq_len, hp, in.x_stride);
  in.dt = RandomRows(rng, c.seq_len, c.heads, in.dt_stride, 0.01f, 0.2f);
  in.A = RandomFloats(rng, c.heads, -4.0f, -0.25f);
  in.B = RandomRows(rng, c.seq_len, gn, in.b_stride);
  in.C = RandomRows(rng, c.seq_len, gn, in.c_stride);
  in.D = RandomFloats(rng, c.heads, 0.5f, 1.5f);
  in.h0 = RandomFloats(rng, hp * c.state_size);
  return in;
}

// Sizes and strides of `c` (packed rows through "0 means packed"); no pointers.
SsdScanParams ShapeParams(const GpuCase& c, const GpuInputs& in, int64_t seq_len) {
  SsdScanParams p;
  p.seq_len = seq_len;
  p.num_heads = c.heads;
  p.head_dim = c.head_dim;
  p.num_groups = c.groups;
  p.state_size = c.state_size;
  p.chunk_size = c.chunk_size;
  if (c.pad != 0) {
    p.x_stride = in.x_stride;
    p.dt_stride = in.dt_stride;
    p.b_stride = in.b_stride;
    p.c_stride = in.c_stride;
  }
  return p;
}

struct GpuOutputs {
  std::vector<float> y, final_state, log_decay;
};

// The CPU reference with the given fp32 x, B, C (the inputs or their bf16 rounding).
GpuOutputs CpuReference(const GpuCase& c, const GpuInputs& in, const std::vector<float>& x,
                        const std::vector<float>& B, const std::vector<float>& C) {
  GpuOutputs out{NaNs(c.seq_len * c.heads * c.head_dim), NaNs(in.h0.size()), NaNs(c.heads)};
  SsdScanParams p = ShapeParams(c, in, c.seq_len);
  p.x = x.data();
  p.dt = in.dt.data();
  p.A = in.A.data();
  p.B = B.data();
  p.C = C.data();
  p.D = c.skip ? in.D.data() : nullptr;
  p.initial_state = c.initial_state ? in.h0.data() : nullptr;
  p.y = out.y.data();
  p.final_state = out.final_state.data();
  p.log_decay = out.log_decay.data();
  const absl::Status status = cpu::SsdScan(p);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

// x, B and C on the device as `type` (bf16 bits or fp32), NaN padding included.
struct DeviceOperands {
  DeviceOperands(const GpuInputs& in, ElementType type)
      : bf16(type == ElementType::kBF16),
        x16(bf16 ? ToBf16(in.x) : std::vector<uint16_t>{}),
        b16(bf16 ? ToBf16(in.B) : std::vector<uint16_t>{}),
        c16(bf16 ? ToBf16(in.C) : std::vector<uint16_t>{}),
        x32(bf16 ? std::vector<float>{} : in.x),
        b32(bf16 ? std::vector<float>{} : in.B),
        c32(bf16 ? std::vector<float>{} : in.C) {}
  // Row `t` of each operand (element strides of `in`).
  const void* x(const GpuInputs& in, int64_t t) const {
    return bf16 ? static_cast<const void*>(x16.get() + t * in.x_stride) : x32.get() + t * in.x_stride;
  }
  const void* B(const GpuInputs& in, int64_t t) const {
    return bf16 ? static_cast<const void*>(b16.get() + t * in.b_stride) : b32.get() + t * in.b_stride;
  }
  const void* C(const GpuInputs& in, int64_t t) const {
    return bf16 ? static_cast<const void*>(c16.get() + t * in.c_stride) : c32.get() + t * in.c_stride;
  }
  bool bf16;
  DeviceArray<uint16_t> x16, b16, c16;
  DeviceArray<float> x32, b32, c32;
};

// CUDA SsdScan of `c` with x, B, C stored as `type`, into NaN-poisoned outputs;
// with c.alias_final the final state overwrites the initial state in place.
GpuOutputs RunCuda(const GpuCase& c, const GpuInputs& in, ElementType type) {
  const DeviceOperands ops(in, type);
  DeviceArray<float> d_dt(in.dt), d_A(in.A), d_D(in.D), d_h0(in.h0);
  DeviceArray<float> d_y(NaNs(c.seq_len * c.heads * c.head_dim)), d_final(NaNs(in.h0.size())),
      d_log_decay(NaNs(c.heads));
  SsdScanParams p = ShapeParams(c, in, c.seq_len);
  p.type = type;
  p.x = c.seq_len > 0 ? ops.x(in, 0) : nullptr;
  p.dt = d_dt.get();
  p.A = d_A.get();
  p.B = c.seq_len > 0 ? ops.B(in, 0) : nullptr;
  p.C = c.seq_len > 0 ? ops.C(in, 0) : nullptr;
  p.D = c.skip ? d_D.get() : nullptr;
  p.initial_state = c.initial_state ? d_h0.get() : nullptr;
  p.y = d_y.get();
  p.final_state = c.alias_final ? d_h0.get() : d_final.get();
  p.log_decay = d_log_decay.get();
  const absl::Status status = cuda::SsdScan(p, nullptr);
  EXPECT_TRUE(status.ok()) << status;
  return GpuOutputs{d_y.Download(), c.alias_final ? d_h0.Download() : d_final.Download(),
                    d_log_decay.Download()};
}

// ‖got − want‖₂ / ‖want‖₂ in double; infinity where got is not finite (or sizes differ).
double RelativeL2(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double err2 = 0.0, ref2 = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    const double d = static_cast<double>(got[i]) - want[i];
    err2 += d * d;
    ref2 += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(err2 / ref2);
}

// The errors of one output: the kernel's and a plain bf16 implementation's
// against the reference on unrounded inputs, and the kernel's against the
// reference on its own rounded inputs.
struct Bf16Errors {
  double got, plain, own;
};

void ExpectWithinTwicePlain(const char* what, const Bf16Errors& e) {
  EXPECT_GT(e.plain, 0.0) << what;
  EXPECT_LE(e.got, 2.0 * e.plain) << what << ": relative L2 " << e.got << ", plain bf16 "
                                  << e.plain;
  EXPECT_LE(e.own, kBf16OwnRoundingBound) << what;
}

// The bf16 scan of `c` on fresh inputs by the 2x rule: y against a plain
// implementation that rounds inputs and y to bf16; the final state (an fp32
// output) against one that rounds only the inputs (stricter); log_decay as fp32.
void ExpectBf16WithinTwicePlain(const GpuCase& c, std::mt19937& rng) {
  SCOPED_TRACE(Describe(c));
  const GpuInputs in = MakeGpuInputs(c, rng);
  const GpuOutputs ref = CpuReference(c, in, in.x, in.B, in.C);
  const GpuOutputs ref_rounded =
      CpuReference(c, in, RoundedBf16(in.x), RoundedBf16(in.B), RoundedBf16(in.C));
  const GpuOutputs got = RunCuda(c, in, ElementType::kBF16);
  const Bf16Errors y{RelativeL2(got.y, ref.y), RelativeL2(RoundedBf16(ref_rounded.y), ref.y),
                     RelativeL2(got.y, ref_rounded.y)};
  const Bf16Errors state{RelativeL2(got.final_state, ref.final_state),
                         RelativeL2(ref_rounded.final_state, ref.final_state),
                         RelativeL2(got.final_state, ref_rounded.final_state)};
  const double log_decay = RelativeL2(got.log_decay, ref.log_decay);
  std::printf("SsdScan bf16 %s: y %.3g (plain %.3g, own %.3g); state %.3g (plain %.3g, own %.3g); "
              "log_decay %.3g\n",
              Describe(c).c_str(), y.got, y.plain, y.own, state.got, state.plain, state.own,
              log_decay);
  ExpectWithinTwicePlain("y", y);
  ExpectWithinTwicePlain("final_state", state);
  EXPECT_LE(log_decay, kLogDecayTolerance) << "log_decay";
}

// Head_dim 64 with state_size 64 or 128: the wgmma kernel's shapes (unless
// the rows are unaligned), around its 64-token chunks and 3 copy buffers.
const GpuCase kHeadDim64Cases[] = {
    GpuCase{1, 4, 64, 2, 128, 128, 0, true, true, true},       // one token; h0 aliased
    GpuCase{63, 2, 64, 1, 128, 128, 0, false, false, true},    // one short chunk from zero
    GpuCase{65, 2, 64, 2, 128, 128, 8, true, false, true},     // a chunk and one token
    GpuCase{77, 8, 64, 2, 128, 64, 8, false, false, true},     // ragged; aligned strides; Q 64
    GpuCase{200, 8, 64, 4, 128, 256, 0, true, false, false},   // Q 256 > L; D null
    GpuCase{150, 4, 64, 2, 128, 128, 3, true, false, true},    // unaligned rows: mma.sync
    GpuCase{513, 4, 64, 1, 128, 128, 0, true, true, true},     // G 1; ragged; aliased
    GpuCase{64, 2, 64, 1, 64, 64, 0, true, false, true},       // one whole chunk; N 64
    GpuCase{300, 4, 64, 2, 64, 128, 8, true, true, true},      // N 64 over 5 chunks
    GpuCase{1000, 16, 64, 4, 128, 128, 0, true, false, true},  // many chunks
};

TEST_F(SsdScanGpuTest, Bf16WithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  for (const GpuCase& c : kHeadDim64Cases) ExpectBf16WithinTwicePlain(c, rng);
  for (const GpuCase& c : {
           GpuCase{200, 6, 40, 3, 17, 128, 3, true, false, true},    // odd P, N; unaligned rows
           GpuCase{333, 3, 72, 3, 200, 100, 8, true, false, true},   // two head_dim tiles; N 200
           GpuCase{130, 4, 128, 2, 256, 64, 0, false, false, true},  // P 128; N 256
       }) {
    ExpectBf16WithinTwicePlain(c, rng);
  }
}

// Sets TESSERA_SSD_KERNEL for one scope (SsdScan reads it on every call).
class ScopedSsdKernel {
 public:
  explicit ScopedSsdKernel(const char* name) { setenv("TESSERA_SSD_KERNEL", name, 1); }
  ~ScopedSsdKernel() { unsetenv("TESSERA_SSD_KERNEL"); }
  ScopedSsdKernel(const ScopedSsdKernel&) = delete;
  ScopedSsdKernel& operator=(const ScopedSsdKernel&) = delete;
};

// The mma.sync kernel stays right at the shapes the wgmma kernel took over.
TEST_F(SsdScanGpuTest, Bf16MmaKernelWithinTwiceTheErrorOfPlainBf16) {
  const ScopedSsdKernel mma("mma");
  std::mt19937 rng(std::random_device{}());
  for (const GpuCase& c : kHeadDim64Cases) ExpectBf16WithinTwicePlain(c, rng);
  ExpectBf16WithinTwicePlain(GpuCase{700, 32, 64, 2, 128, 128, 8, true, false, true}, rng);
}

TEST_F(SsdScanGpuTest, Bf16AtTheNemotronH8bLayer) {
  std::mt19937 rng(std::random_device{}());
  ExpectBf16WithinTwicePlain(GpuCase{2048, 128, 64, 8, 128, 128, 0, true, false, true}, rng);
  ExpectBf16WithinTwicePlain(GpuCase{1500, 128, 64, 8, 128, 128, 8, false, false, true}, rng);
}

TEST_F(SsdScanGpuTest, F32AtTheNemotronH8bLayerMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  const GpuCase c{1024, 128, 64, 8, 128, 128, 0, true, false, true};
  const GpuInputs in = MakeGpuInputs(c, rng);
  const GpuOutputs ref = CpuReference(c, in, in.x, in.B, in.C);
  const GpuOutputs got = RunCuda(c, in, ElementType::kF32);
  const double y = RelativeL2(got.y, ref.y), state = RelativeL2(got.final_state, ref.final_state);
  std::printf("SsdScan fp32 %s: y %.3g, state %.3g\n", Describe(c).c_str(), y, state);
  EXPECT_LE(y, kF32Tolerance);
  EXPECT_LE(state, kF32Tolerance);
  EXPECT_LE(RelativeL2(got.log_decay, ref.log_decay), kLogDecayTolerance);
}

// A sequence scanned in two calls, the second from the first's final state
// (prefill continued, a shard), is the whole scan within the same rule.
TEST_F(SsdScanGpuTest, Bf16SplitSequenceWithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  const GpuCase c{300, 4, 64, 2, 128, 128, 8, true, false, true};
  const GpuInputs in = MakeGpuInputs(c, rng);
  const GpuOutputs ref = CpuReference(c, in, in.x, in.B, in.C);
  const GpuOutputs ref_rounded =
      CpuReference(c, in, RoundedBf16(in.x), RoundedBf16(in.B), RoundedBf16(in.C));
  const double y_plain = RelativeL2(RoundedBf16(ref_rounded.y), ref.y);
  const double state_plain = RelativeL2(ref_rounded.final_state, ref.final_state);
  const int64_t hp = c.heads * c.head_dim;
  const DeviceOperands ops(in, ElementType::kBF16);
  DeviceArray<float> d_dt(in.dt), d_A(in.A), d_D(in.D), d_state(in.h0);
  for (int64_t split : {int64_t{1}, int64_t{64}, int64_t{100}, c.seq_len - 1}) {
    SCOPED_TRACE(absl::StrCat("split=", split));
    DeviceArray<float> d_y(NaNs(c.seq_len * hp)), d_log_decay(NaNs(2 * c.heads));
    ASSERT_EQ(cudaMemcpy(d_state.get(), in.h0.data(), sizeof(float) * in.h0.size(),
                         cudaMemcpyHostToDevice),
              cudaSuccess);
    for (int part = 0; part < 2; ++part) {
      const int64_t begin = part == 0 ? 0 : split;
      SsdScanParams p = ShapeParams(c, in, part == 0 ? split : c.seq_len - split);
      p.type = ElementType::kBF16;
      p.x = ops.x(in, begin);
      p.dt = d_dt.get() + begin * in.dt_stride;
      p.A = d_A.get();
      p.B = ops.B(in, begin);
      p.C = ops.C(in, begin);
      p.D = d_D.get();
      p.initial_state = d_state.get();
      p.final_state = d_state.get();  // carried in place
      p.y = d_y.get() + begin * hp;
      p.log_decay = d_log_decay.get() + part * c.heads;
      const absl::Status status = cuda::SsdScan(p, nullptr);
      ASSERT_TRUE(status.ok()) << status;
    }
    const double y = RelativeL2(d_y.Download(), ref.y);
    const double state = RelativeL2(d_state.Download(), ref.final_state);
    const std::vector<float> parts = d_log_decay.Download();
    std::vector<float> log_decay(c.heads);
    for (int64_t h = 0; h < c.heads; ++h) log_decay[h] = parts[h] + parts[c.heads + h];
    std::printf("SsdScan bf16 split at %lld: y %.3g (plain %.3g); state %.3g (plain %.3g)\n",
                static_cast<long long>(split), y, y_plain, state, state_plain);
    EXPECT_LE(y, 2.0 * y_plain);
    EXPECT_LE(state, 2.0 * state_plain);
    EXPECT_LE(RelativeL2(log_decay, ref.log_decay), kLogDecayTolerance);
  }
}

TEST_F(SsdScanGpuTest, Bf16EmptySequencePassesStateThrough) {
  std::mt19937 rng(std::random_device{}());
  const GpuCase c{0, 4, 64, 2, 128, 128, 0, true, false, true};
  const GpuInputs in = MakeGpuInputs(c, rng);
  const GpuOutputs got = RunCuda(c, in, ElementType::kBF16);
  EXPECT_EQ(got.final_state, in.h0);
  EXPECT_EQ(got.log_decay, std::vector<float>(c.heads, 0.0f));
}

TEST_F(SsdScanGpuTest, RejectsWhatBf16CannotRun) {
  std::mt19937 rng(std::random_device{}());
  const GpuCase c{5, 2, 8, 1, 300, 64, 0, false, false, false};
  const GpuInputs in = MakeGpuInputs(c, rng);
  const DeviceOperands ops(in, ElementType::kBF16);
  DeviceArray<float> d_dt(in.dt), d_A(in.A), d_y(NaNs(c.seq_len * c.heads * c.head_dim));
  SsdScanParams p = ShapeParams(c, in, c.seq_len);
  p.type = ElementType::kBF16;
  p.x = ops.x(in, 0);
  p.dt = d_dt.get();
  p.A = d_A.get();
  p.B = ops.B(in, 0);
  p.C = ops.C(in, 0);
  p.y = d_y.get();
  const absl::Status status = cuda::SsdScan(p, nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_NE(status.message().find("state_size must be <= 256. Given: 300"), absl::string_view::npos)
      << status;
  p.type = static_cast<ElementType>(7);
  EXPECT_EQ(cuda::SsdScan(p, nullptr).code(), absl::StatusCode::kInvalidArgument);
}


}  // namespace
}  // namespace tessera
