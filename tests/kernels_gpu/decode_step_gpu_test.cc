// The batched one-token Mamba ops on CUDA against the CPU references, with
// every request's state in its own device allocation (as the state pool
// holds them): ConvStep (fp32 and bf16 x / out, K 1 to 6, strided rows) and
// SsdStep over a batch (rows read from a conv-output-like layout by stride,
// dt raw in fp32 or bf16 with the fused softplus, the 16-byte path and the
// scalar one: N % 4 != 0, a state at an address that is not 16-byte aligned,
// head_dim not a multiple of the 4 rows a warp owns; y over x in place).
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/conv_step.h"
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

constexpr double kConvStepTolerance = 1e-5;
constexpr double kSsdStepTolerance = 1e-5;
constexpr double kBf16OutTolerance = 1e-2;  // rounding to bf16 where the two fp32 sums round apart

class DecodeStepGpuTest : public GpuTest {};

// One device allocation per request (each `offset` floats into its own
// buffer), the pointer array on the device, and the host copies.
class DeviceStates {
 public:
  DeviceStates(const std::vector<std::vector<float>>& host, int64_t offset) {
    for (const auto& s : host) {
      std::vector<float> padded(offset, 0.0f);
      padded.insert(padded.end(), s.begin(), s.end());
      buffers_.push_back(std::make_unique<DeviceArray<float>>(padded));
      ptrs_.push_back(buffers_.back()->get() + offset);
    }
    offset_ = offset;
    array_ = std::make_unique<DeviceArray<float*>>(ptrs_);
  }
  float* const* array() const { return array_->get(); }
  std::vector<float> Download(size_t r) const {
    const std::vector<float> all = buffers_[r]->Download();
    return std::vector<float>(all.begin() + offset_, all.end());
  }

 private:
  std::vector<std::unique_ptr<DeviceArray<float>>> buffers_;
  std::vector<float*> ptrs_;
  std::unique_ptr<DeviceArray<float*>> array_;
  int64_t offset_ = 0;
};

TEST_F(DecodeStepGpuTest, ConvStepMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  struct Case {
    int64_t batch, channels, width;
    ElementType x_type, out_type;
  };
  for (const Case& c : {Case{1, 1, 1, ElementType::kF32, ElementType::kF32},
                        Case{5, 37, 4, ElementType::kF32, ElementType::kF32},
                        Case{3, 300, 2, ElementType::kBF16, ElementType::kF32},
                        Case{32, 10240, 4, ElementType::kBF16, ElementType::kF32},  // nemotronh-8b, batch 32
                        Case{7, 64, 6, ElementType::kBF16, ElementType::kBF16}}) {
    SCOPED_TRACE(testing::Message() << "batch " << c.batch << " C " << c.channels << " K " << c.width << " x "
                                    << ElementTypeName(c.x_type) << " out " << ElementTypeName(c.out_type));
    const int64_t x_stride = c.channels + 9, out_stride = c.channels + 3, state_elems = (c.width - 1) * c.channels;
    const std::vector<float> x = kernel_test::RoundedBf16(RandomRows(rng, c.batch, c.channels, x_stride, -2.0f, 2.0f));
    const auto weight = RandomFloats(rng, c.channels * c.width), bias = RandomFloats(rng, c.channels);
    std::vector<std::vector<float>> states;
    for (int64_t r = 0; r < c.batch; ++r) states.push_back(RandomFloats(rng, state_elems, -2.0f, 2.0f));
    const bool bf16_x = c.x_type == ElementType::kBF16, bf16_out = c.out_type == ElementType::kBF16;
    const std::vector<uint16_t> x16 = gpu_test::ToBf16(x);

    std::vector<std::vector<float>> want_states = states;
    std::vector<float*> want_ptrs;
    for (auto& s : want_states) want_ptrs.push_back(s.data());
    std::vector<float> want32 = NaNs(c.batch * out_stride);
    std::vector<uint16_t> want16(c.batch * out_stride, 0x7FC0);
    ConvStepParams p{c.batch, c.channels, c.width, bf16_x ? static_cast<const void*>(x16.data()) : x.data(),
                     x_stride, weight.data(), bias.data(), want_ptrs.data(),
                     bf16_out ? static_cast<void*>(want16.data()) : want32.data(), out_stride, c.x_type,
                     c.out_type};
    ASSERT_TRUE(cpu::ConvStep(p).ok());

    DeviceArray<float> d_x(x), d_w(weight), d_b(bias), d_out32(NaNs(c.batch * out_stride));
    DeviceArray<uint16_t> d_x16(x16), d_out16(std::vector<uint16_t>(c.batch * out_stride, 0x7FC0));
    const DeviceStates d_states(states, /*offset=*/1);
    p.x = bf16_x ? static_cast<const void*>(d_x16.get()) : d_x.get();
    p.weight = d_w.get();
    p.bias = d_b.get();
    p.states = d_states.array();
    p.out = bf16_out ? static_cast<void*>(d_out16.get()) : d_out32.get();
    const absl::Status status = cuda::ConvStep(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    if (bf16_out) {
      EXPECT_TRUE(CloseInRelativeL2(
          gpu_test::FromBf16(kernel_test::PackedRows(d_out16.Download(), c.batch, c.channels, out_stride)),
          gpu_test::FromBf16(kernel_test::PackedRows(want16, c.batch, c.channels, out_stride)), kBf16OutTolerance));
    } else {
      EXPECT_TRUE(CloseInRelativeL2(kernel_test::PackedRows(d_out32.Download(), c.batch, c.channels, out_stride),
                                    kernel_test::PackedRows(want32, c.batch, c.channels, out_stride),
                                    kConvStepTolerance));
    }
    for (int64_t r = 0; r < c.batch; ++r) EXPECT_EQ(d_states.Download(r), want_states[r]) << r;  // moved exactly
  }
}

struct SsdCase {
  int64_t batch, heads, head_dim, groups, state_size;
  bool bf16_dt, fused_dt, alias_y;
  int64_t state_offset;  // floats: 1 puts every state off 16-byte alignment (the scalar path)
};

void CheckSsdStep(const SsdCase& c, std::mt19937& rng) {
  SCOPED_TRACE(testing::Message() << "batch " << c.batch << " H " << c.heads << " P " << c.head_dim << " G "
                                  << c.groups << " N " << c.state_size << " bf16 dt " << c.bf16_dt << " fused "
                                  << c.fused_dt << " alias " << c.alias_y << " offset " << c.state_offset);
  const int64_t hp = c.heads * c.head_dim, gn = c.groups * c.state_size;
  const int64_t conv_stride = hp + 2 * gn + 4, dt_stride = c.heads + 3;  // [x | B | C] rows, in_proj's dt
  const auto conv = RandomRows(rng, c.batch, hp + 2 * gn, conv_stride);
  const auto dt = kernel_test::RoundedBf16(RandomRows(rng, c.batch, c.heads, dt_stride, c.fused_dt ? -4.0f : 0.01f,
                                                      c.fused_dt ? 1.0f : 0.2f));
  const auto dt16 = gpu_test::ToBf16(dt);
  const auto A = RandomFloats(rng, c.heads, -4.0f, -0.25f), D = RandomFloats(rng, c.heads);
  const auto dt_bias = RandomFloats(rng, c.heads, -1.0f, 1.0f);
  std::vector<std::vector<float>> states;
  for (int64_t r = 0; r < c.batch; ++r) states.push_back(RandomFloats(rng, hp * c.state_size));

  std::vector<float> want_conv = conv;  // y over x when aliased
  std::vector<float> want_y = NaNs(c.batch * conv_stride);
  std::vector<std::vector<float>> want_states = states;
  std::vector<float*> want_ptrs;
  for (auto& s : want_states) want_ptrs.push_back(s.data());
  SsdStepParams p;
  p.num_heads = c.heads;
  p.head_dim = c.head_dim;
  p.num_groups = c.groups;
  p.state_size = c.state_size;
  p.A = A.data();
  p.D = D.data();
  p.batch = c.batch;
  p.x_stride = p.b_stride = p.c_stride = p.y_stride = conv_stride;
  p.dt_stride = dt_stride;
  p.dt_type = c.bf16_dt ? ElementType::kBF16 : ElementType::kF32;
  p.dt_bias = c.fused_dt ? dt_bias.data() : nullptr;
  p.dt_min = 0.001f;
  p.dt_max = 0.15f;
  auto point = [&](float* conv_rows, const void* dt_rows, float* const* state_ptrs, float* y) {
    p.x = conv_rows;
    p.B = conv_rows + hp;
    p.C = conv_rows + hp + gn;
    p.dt = dt_rows;
    p.states = state_ptrs;
    p.y = c.alias_y ? conv_rows : y;
  };
  point(want_conv.data(), c.bf16_dt ? static_cast<const void*>(dt16.data()) : dt.data(), want_ptrs.data(),
        want_y.data());
  ASSERT_TRUE(cpu::SsdStep(p).ok());

  DeviceArray<float> d_conv(conv), d_dt(dt), d_A(A), d_D(D), d_bias(dt_bias), d_y(NaNs(c.batch * conv_stride));
  DeviceArray<uint16_t> d_dt16(dt16);
  const DeviceStates d_states(states, c.state_offset);
  p.A = d_A.get();
  p.D = d_D.get();
  p.dt_bias = c.fused_dt ? d_bias.get() : nullptr;
  point(d_conv.get(), c.bf16_dt ? static_cast<const void*>(d_dt16.get()) : d_dt.get(), d_states.array(), d_y.get());
  const absl::Status status = cuda::SsdStep(p, nullptr);
  ASSERT_TRUE(status.ok()) << status;
  const auto got_y = c.alias_y ? d_conv.Download() : d_y.Download();
  const auto& want = c.alias_y ? want_conv : want_y;
  EXPECT_TRUE(CloseInRelativeL2(kernel_test::PackedRows(got_y, c.batch, hp, conv_stride),
                                kernel_test::PackedRows(want, c.batch, hp, conv_stride), kSsdStepTolerance))
      << "y";
  for (int64_t r = 0; r < c.batch; ++r) {
    EXPECT_TRUE(CloseInRelativeL2(d_states.Download(r), want_states[r], kSsdStepTolerance)) << "state " << r;
  }
}

TEST_F(DecodeStepGpuTest, BatchedSsdStepMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const SsdCase& c : {SsdCase{1, 1, 1, 1, 1, false, false, false, 0},
                           SsdCase{3, 128, 64, 8, 128, true, true, false, 0},   // nemotronh-8b, bf16 raw dt
                           SsdCase{4, 8, 5, 2, 7, false, true, true, 0},        // N % 4: scalar; 5 rows; y over x
                           SsdCase{2, 6, 16, 3, 200, false, false, false, 0},   // 16-byte path, two slices a lane
                           SsdCase{5, 4, 9, 1, 16, true, true, false, 1},       // states off alignment: scalar
                           SsdCase{33, 16, 64, 2, 64, false, true, true, 0}}) {
    CheckSsdStep(c, rng);
  }
}

// The single-request form (`state`, no `states`) still runs, as the worker calls it.
TEST_F(DecodeStepGpuTest, SingleStateFormMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  const int64_t H = 12, P = 8, G = 3, N = 16, hp = H * P;
  const auto x = RandomFloats(rng, hp), dt = RandomFloats(rng, H, 0.01f, 0.2f), A = RandomFloats(rng, H, -4.0f, -0.25f);
  const auto B = RandomFloats(rng, G * N), C = RandomFloats(rng, G * N), D = RandomFloats(rng, H);
  const auto state = RandomFloats(rng, hp * N);
  std::vector<float> want_state = state, want_y = NaNs(hp);
  SsdStepParams p{H, P, G, N, x.data(), dt.data(), A.data(), B.data(), C.data(), D.data(), want_state.data(),
                  want_y.data()};
  ASSERT_TRUE(cpu::SsdStep(p).ok());
  DeviceArray<float> d_x(x), d_dt(dt), d_A(A), d_B(B), d_C(C), d_D(D), d_state(state), d_y(NaNs(hp));
  p = SsdStepParams{H, P, G, N, d_x.get(), d_dt.get(), d_A.get(), d_B.get(), d_C.get(), d_D.get(), d_state.get(),
                    d_y.get()};
  ASSERT_TRUE(cuda::SsdStep(p, nullptr).ok());
  EXPECT_TRUE(CloseInRelativeL2(d_y.Download(), want_y, kSsdStepTolerance));
  EXPECT_TRUE(CloseInRelativeL2(d_state.Download(), want_state, kSsdStepTolerance));
}

}  // namespace
}  // namespace tessera
