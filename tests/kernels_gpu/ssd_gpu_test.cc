// The Mamba-2 mixer's sequence ops on CUDA against the CPU references:
// CausalConv1d (state in/out, aliasing; fp32, and bf16 x / out through the
// tiled kernel's tile boundaries and halos and the plain kernel), SsdScan (length 1, one chunk, ragged
// last chunk, many chunks; initial state, final state aliasing it, log_decay,
// strided inputs), SsdAddInitialState and SsdStep.
#include <algorithm>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/causal_conv1d.h"
#include "kernels/ssd_scan.h"
#include "kernels/ssd_step.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::CloseInRelativeL2;
using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::NaNs;
using gpu_test::RandomFloats;
using gpu_test::RandomRows;

constexpr double kTolerance = 1e-5;

class SsdGpuTest : public GpuTest {};

TEST_F(SsdGpuTest, CausalConv1dMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  struct Case {
    int64_t seq_len, channels, width, pad;
    bool state_in, state_out, alias;
  };
  for (const Case& c : {Case{1, 1, 1, 0, false, true, false}, Case{0, 37, 4, 0, true, true, true},
                        Case{1, 37, 4, 0, true, true, true}, Case{2, 37, 4, 3, true, true, false},
                        Case{3, 64, 4, 0, false, true, false}, Case{17, 300, 4, 5, true, false, false},
                        Case{300, 1024 + 256, 4, 0, true, true, true},
                        Case{1000, 33, 2, 0, false, false, false}}) {
    SCOPED_TRACE(testing::Message() << "L " << c.seq_len << " C " << c.channels << " K "
                                    << c.width << " alias " << c.alias);
    const int64_t stride = c.channels + c.pad;
    const int64_t state_elems = (c.width - 1) * c.channels;
    const auto x = RandomRows(rng, c.seq_len, c.channels, stride);
    const auto weight = RandomFloats(rng, c.channels * c.width);
    const auto bias = RandomFloats(rng, c.channels);
    const auto state_in = RandomFloats(rng, state_elems);
    std::vector<float> want_out(c.seq_len * c.channels);
    std::vector<float> want_state = c.alias ? state_in : NaNs(state_elems);
    CausalConv1dParams p{c.seq_len, c.channels, c.width, x.data(), stride, weight.data(),
                         bias.data(), c.state_in ? (c.alias ? want_state.data() : state_in.data()) : nullptr,
                         want_out.data(), c.state_out ? want_state.data() : nullptr};
    ASSERT_TRUE(cpu::CausalConv1d(p).ok());
    DeviceArray<float> d_x(x), d_w(weight), d_b(bias), d_state_in(state_in),
        d_state_out(NaNs(state_elems)), d_out(NaNs(c.seq_len * c.channels));
    p.x = d_x.get();
    p.weight = d_w.get();
    p.bias = d_b.get();
    p.state_in = c.state_in ? d_state_in.get() : nullptr;
    p.out = d_out.get();
    p.state_out = c.state_out ? (c.alias ? d_state_in.get() : d_state_out.get()) : nullptr;
    const absl::Status status = cuda::CausalConv1d(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    if (c.seq_len > 0) {
      EXPECT_TRUE(CloseInRelativeL2(d_out.Download(), want_out, kTolerance));
    }
    if (c.state_out && state_elems > 0) {
      const auto got = c.alias ? d_state_in.Download() : d_state_out.Download();
      if (c.state_in || c.seq_len >= c.width - 1) {
        EXPECT_TRUE(CloseInRelativeL2(got, want_state, kTolerance));
      } else {
        EXPECT_EQ(got, want_state);  // zeros shifted in, exactly
      }
    }
  }
}

// bf16 x (a strided view, as of the in_proj output) and bf16 or fp32 out
// against the CPU's bf16 reference: the same fp32 sums rounded once, so they
// differ only where the two sums round to neighbouring values.
TEST_F(SsdGpuTest, CausalConv1dBf16MatchesCpu) {
  constexpr double kBf16Tolerance = 1e-3;
  std::mt19937 rng(std::random_device{}());
  struct Case {
    int64_t seq_len, channels, width, stride;
    bool state_in;
    ElementType out_type;
  };
  for (const Case& c : {Case{1, 10240, 4, 18560, true, ElementType::kF32},  // decode: the one-token update's fp32 out
                        Case{300, 1024 + 256, 4, 1280 + 8, true, ElementType::kBF16},
                        Case{200, 1024, 4, 1024, false, ElementType::kBF16},  // short tiles: halos inside x
                        Case{5000, 64, 4, 72, true, ElementType::kBF16},
                        Case{77, 256, 3, 264, true, ElementType::kBF16},
                        Case{65, 256, 2, 256, false, ElementType::kF32},
                        Case{9, 256, 1, 256, false, ElementType::kBF16},
                        Case{2, 64, 4, 64, true, ElementType::kBF16},       // L < K-1: every row reads state
                        Case{37, 37, 4, 40, true, ElementType::kBF16},      // channels % 8: the plain kernel
                        Case{40, 64, 4, 67, true, ElementType::kBF16},      // odd stride: the plain kernel
                        Case{31, 64, 6, 64, true, ElementType::kBF16}}) {   // K > 4: the plain kernel
    SCOPED_TRACE(testing::Message() << "L " << c.seq_len << " C " << c.channels << " K " << c.width << " stride "
                                    << c.stride << " out " << ElementTypeName(c.out_type));
    const int64_t state_elems = (c.width - 1) * c.channels;
    const auto x16 = gpu_test::ToBf16(RandomRows(rng, c.seq_len, c.channels, c.stride, -2.0f, 2.0f));
    const auto weight = RandomFloats(rng, c.channels * c.width);
    const auto bias = RandomFloats(rng, c.channels);
    const auto state_in = RandomFloats(rng, state_elems);
    const bool bf16_out = c.out_type == ElementType::kBF16;
    std::vector<float> want32 = NaNs(bf16_out ? 0 : c.seq_len * c.channels);
    std::vector<uint16_t> want16(bf16_out ? c.seq_len * c.channels : 0, 0x7FC0);
    std::vector<float> want_state = NaNs(state_elems);
    CausalConv1dParams p{c.seq_len, c.channels, c.width, x16.data(), c.stride, weight.data(), bias.data(),
                         c.state_in ? state_in.data() : nullptr,
                         bf16_out ? static_cast<void*>(want16.data()) : want32.data(), want_state.data()};
    p.x_type = ElementType::kBF16;
    p.out_type = c.out_type;
    ASSERT_TRUE(cpu::CausalConv1d(p).ok());
    DeviceArray<uint16_t> d_x(x16), d_out16(want16);
    DeviceArray<float> d_w(weight), d_b(bias), d_state_in(state_in), d_state_out(NaNs(state_elems)),
        d_out32(NaNs(want32.size()));
    p.x = d_x.get();
    p.weight = d_w.get();
    p.bias = d_b.get();
    p.state_in = c.state_in ? d_state_in.get() : nullptr;
    p.out = bf16_out ? static_cast<void*>(d_out16.get()) : d_out32.get();
    p.state_out = d_state_out.get();
    const absl::Status status = cuda::CausalConv1d(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    if (bf16_out) {
      EXPECT_TRUE(CloseInRelativeL2(gpu_test::FromBf16(d_out16.Download()), gpu_test::FromBf16(want16),
                                    kBf16Tolerance));
    } else {
      EXPECT_TRUE(CloseInRelativeL2(d_out32.Download(), want32, kTolerance));
    }
    EXPECT_EQ(d_state_out.Download(), want_state);  // rows moved (widened exactly), never computed
  }
}

struct ScanCase {
  int64_t seq_len, heads, head_dim, groups, state_size, chunk_size;
  bool strided, initial_state, alias_final, skip;
};

// Runs SsdScan on CPU and GPU on the same fresh inputs; compares y, final
// state and log_decay.
void CheckScan(const ScanCase& c, std::mt19937& rng) {
  SCOPED_TRACE(testing::Message() << "L " << c.seq_len << " H " << c.heads << " P " << c.head_dim
                                  << " G " << c.groups << " N " << c.state_size << " Q "
                                  << c.chunk_size << " strided " << c.strided << " h0 "
                                  << c.initial_state << " alias " << c.alias_final);
  const int64_t hp = c.heads * c.head_dim, gn = c.groups * c.state_size;
  const int64_t x_stride = c.strided ? hp + 3 : hp, dt_stride = c.strided ? c.heads + 1 : c.heads;
  const int64_t b_stride = c.strided ? gn + 2 : gn, c_stride = c.strided ? gn + 5 : gn;
  const int64_t state_elems = hp * c.state_size;
  const auto x = RandomRows(rng, c.seq_len, hp, x_stride);
  const auto dt = RandomRows(rng, c.seq_len, c.heads, dt_stride, 0.01f, 0.2f);
  const auto A = RandomFloats(rng, c.heads, -4.0f, -0.25f);
  const auto B = RandomRows(rng, c.seq_len, gn, b_stride);
  const auto C = RandomRows(rng, c.seq_len, gn, c_stride);
  const auto D = RandomFloats(rng, c.heads, 0.5f, 1.5f);
  const auto h0 = RandomFloats(rng, state_elems);

  std::vector<float> want_y(c.seq_len * hp), want_decay(c.heads);
  std::vector<float> want_final = c.alias_final ? h0 : NaNs(state_elems);
  SsdScanParams p{c.seq_len, c.heads, c.head_dim, c.groups, c.state_size, c.chunk_size,
                  x.data(), x_stride, dt.data(), dt_stride, A.data(), B.data(), b_stride,
                  C.data(), c_stride, c.skip ? D.data() : nullptr,
                  c.initial_state ? (c.alias_final ? want_final.data() : h0.data()) : nullptr,
                  want_y.data(), want_final.data(), want_decay.data()};
  ASSERT_TRUE(cpu::SsdScan(p).ok());

  DeviceArray<float> d_x(x), d_dt(dt), d_A(A), d_B(B), d_C(C), d_D(D), d_h0(h0);
  DeviceArray<float> d_y(NaNs(c.seq_len * hp)), d_final(NaNs(state_elems)), d_decay(NaNs(c.heads));
  p.x = d_x.get();
  p.dt = d_dt.get();
  p.A = d_A.get();
  p.B = d_B.get();
  p.C = d_C.get();
  p.D = c.skip ? d_D.get() : nullptr;
  p.initial_state = c.initial_state ? d_h0.get() : nullptr;
  p.y = d_y.get();
  p.final_state = c.alias_final ? d_h0.get() : d_final.get();
  p.log_decay = d_decay.get();
  const absl::Status status = cuda::SsdScan(p, nullptr);
  ASSERT_TRUE(status.ok()) << status;
  if (c.seq_len > 0) {
    EXPECT_TRUE(CloseInRelativeL2(d_y.Download(), want_y, kTolerance)) << "y";
  }
  EXPECT_TRUE(CloseInRelativeL2(c.alias_final ? d_h0.Download() : d_final.Download(), want_final,
                                kTolerance))
      << "final_state";
  if (c.seq_len > 0) {
    EXPECT_TRUE(CloseInRelativeL2(d_decay.Download(), want_decay, kTolerance)) << "log_decay";
  } else {
    EXPECT_EQ(d_decay.Download(), want_decay);
  }
}

TEST_F(SsdGpuTest, SsdScanMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const ScanCase& c : {
           ScanCase{1, 1, 1, 1, 1, 1, false, false, false, false},       // length 1
           ScanCase{1, 4, 5, 2, 7, 64, true, true, true, true},           // length 1, h0 aliased
           ScanCase{0, 4, 5, 2, 7, 64, false, true, false, true},         // only the state moves
           ScanCase{64, 4, 64, 1, 128, 64, false, false, false, true},    // one chunk
           ScanCase{100, 6, 33, 3, 17, 64, true, true, false, true},      // ragged last chunk
           ScanCase{257, 4, 64, 2, 128, 256, false, true, true, true},    // 2 chunks, 1 ragged
           ScanCase{1000, 8, 64, 2, 128, 64, false, true, false, true},   // many chunks
           ScanCase{777, 3, 70, 1, 65, 100, true, false, false, false},   // chunk not a tile multiple
           ScanCase{513, 2, 16, 2, 8, 7, true, true, true, true},         // tiny chunks, many
       }) {
    CheckScan(c, rng);
  }
}

// SsdAddInitialState on CPU and GPU, over y and final_state that already hold values.
TEST_F(SsdGpuTest, SsdAddInitialStateMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  struct Case {
    int64_t seq_len, heads, head_dim, groups, state_size;
    bool strided, final_state;
  };
  for (const Case& c : {Case{1, 1, 1, 1, 1, false, true}, Case{0, 4, 5, 2, 7, false, true},
                        Case{77, 4, 5, 2, 7, true, true}, Case{300, 8, 64, 2, 128, false, false},
                        Case{1000, 4, 64, 1, 128, true, true}}) {
    SCOPED_TRACE(testing::Message() << "L " << c.seq_len << " H " << c.heads << " P "
                                    << c.head_dim << " N " << c.state_size);
    const int64_t hp = c.heads * c.head_dim, gn = c.groups * c.state_size;
    const int64_t dt_stride = c.strided ? c.heads + 3 : c.heads, c_stride = c.strided ? gn + 1 : gn;
    const int64_t state_elems = hp * c.state_size;
    const auto dt = RandomRows(rng, c.seq_len, c.heads, dt_stride, 0.01f, 0.2f);
    const auto A = RandomFloats(rng, c.heads, -4.0f, -0.25f);
    const auto C = RandomRows(rng, c.seq_len, gn, c_stride);
    const auto h_in = RandomFloats(rng, state_elems);
    const auto y0 = RandomFloats(rng, c.seq_len * hp);
    const auto final0 = RandomFloats(rng, state_elems);
    std::vector<float> want_y = y0, want_final = final0;
    SsdAddInitialStateParams p{c.seq_len, c.heads, c.head_dim, c.groups, c.state_size,
                               dt.data(), dt_stride, A.data(), C.data(), c_stride, h_in.data(),
                               want_y.data(), c.final_state ? want_final.data() : nullptr};
    ASSERT_TRUE(cpu::SsdAddInitialState(p).ok());
    DeviceArray<float> d_dt(dt), d_A(A), d_C(C), d_h(h_in), d_y(y0), d_final(final0);
    p.dt = d_dt.get();
    p.A = d_A.get();
    p.C = d_C.get();
    p.initial_state = d_h.get();
    p.y = d_y.get();
    p.final_state = c.final_state ? d_final.get() : nullptr;
    const absl::Status status = cuda::SsdAddInitialState(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    if (c.seq_len > 0) {
      EXPECT_TRUE(CloseInRelativeL2(d_y.Download(), want_y, kTolerance));
    }
    EXPECT_TRUE(CloseInRelativeL2(d_final.Download(), want_final, kTolerance));
  }
}

// The context-parallel identity on the GPU: SsdScan(h0) == SsdScan(0) + SsdAddInitialState(h0).
TEST_F(SsdGpuTest, ScanFromZeroPlusInitialStateEqualsScanFromState) {
  std::mt19937 rng(std::random_device{}());
  const int64_t L = 700, H = 4, P = 64, G = 2, N = 128, Q = 128;
  const int64_t hp = H * P, gn = G * N, state_elems = hp * N;
  DeviceArray<float> x(RandomFloats(rng, L * hp)), dt(RandomFloats(rng, L * H, 0.01f, 0.2f)),
      A(RandomFloats(rng, H, -4.0f, -0.25f)), B(RandomFloats(rng, L * gn)),
      C(RandomFloats(rng, L * gn)), D(RandomFloats(rng, H)), h0(RandomFloats(rng, state_elems));
  DeviceArray<float> y_full(NaNs(L * hp)), final_full(NaNs(state_elems));
  DeviceArray<float> y_split(NaNs(L * hp)), final_split(NaNs(state_elems));
  SsdScanParams p{L, H, P, G, N, Q, x.get(), 0, dt.get(), 0, A.get(), B.get(), 0, C.get(), 0,
                  D.get(), h0.get(), y_full.get(), final_full.get(), nullptr};
  ASSERT_TRUE(cuda::SsdScan(p, nullptr).ok());
  p.initial_state = nullptr;
  p.y = y_split.get();
  p.final_state = final_split.get();
  ASSERT_TRUE(cuda::SsdScan(p, nullptr).ok());
  SsdAddInitialStateParams add{L, H, P, G, N, dt.get(), 0, A.get(), C.get(), 0, h0.get(),
                               y_split.get(), final_split.get()};
  ASSERT_TRUE(cuda::SsdAddInitialState(add, nullptr).ok());
  EXPECT_TRUE(CloseInRelativeL2(y_split.Download(), y_full.Download(), kTolerance));
  EXPECT_TRUE(CloseInRelativeL2(final_split.Download(), final_full.Download(), kTolerance));
}

TEST_F(SsdGpuTest, SsdStepMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  struct Case {
    int64_t heads, head_dim, groups, state_size;
    bool skip, alias;
  };
  for (const Case& c : {Case{1, 1, 1, 1, false, false}, Case{8, 5, 2, 7, true, true},
                        Case{128, 64, 8, 128, true, false}, Case{24, 64, 1, 200, false, true}}) {
    SCOPED_TRACE(testing::Message() << "H " << c.heads << " P " << c.head_dim << " N "
                                    << c.state_size << " alias " << c.alias);
    const int64_t hp = c.heads * c.head_dim, gn = c.groups * c.state_size;
    const auto x = RandomFloats(rng, hp);
    const auto dt = RandomFloats(rng, c.heads, 0.01f, 0.2f);
    const auto A = RandomFloats(rng, c.heads, -4.0f, -0.25f);
    const auto B = RandomFloats(rng, gn), C = RandomFloats(rng, gn);
    const auto D = RandomFloats(rng, c.heads);
    const auto state = RandomFloats(rng, hp * c.state_size);
    std::vector<float> want_state = state, want_y(hp);
    SsdStepParams p{c.heads, c.head_dim, c.groups, c.state_size, x.data(), dt.data(), A.data(),
                    B.data(), C.data(), c.skip ? D.data() : nullptr, want_state.data(),
                    want_y.data()};
    ASSERT_TRUE(cpu::SsdStep(p).ok());
    DeviceArray<float> d_x(x), d_dt(dt), d_A(A), d_B(B), d_C(C), d_D(D), d_state(state),
        d_y(NaNs(hp));
    p.x = d_x.get();
    p.dt = d_dt.get();
    p.A = d_A.get();
    p.B = d_B.get();
    p.C = d_C.get();
    p.D = c.skip ? d_D.get() : nullptr;
    p.state = d_state.get();
    p.y = c.alias ? d_x.get() : d_y.get();
    ASSERT_TRUE(cuda::SsdStep(p, nullptr).ok());
    EXPECT_TRUE(CloseInRelativeL2(c.alias ? d_x.Download() : d_y.Download(), want_y, kTolerance));
    EXPECT_TRUE(CloseInRelativeL2(d_state.Download(), want_state, kTolerance));
  }
}

}  // namespace
}  // namespace tessera
