// SsdStep, the decode update, against the recurrence in double for one token,
// and repeated over a sequence against SsdScan over the same tokens: decode must
// continue exactly where a chunked prefill left off. A batch (per-request
// states, rows read from a conv-output-like layout by stride, dt raw in fp32
// or bf16 with the fused softplus) must give each request exactly what its own
// call gives, and the fused softplus exactly what DtSoftplus then a step give.
#include "kernels/ssd_step.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/dt_softplus.h"
#include "kernels/ssd_scan.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;
using kernel_test::SameBits;

// One fp32 step against double.
constexpr double kStepTolerance = 1e-6;
// Steps (exp of each dt·A) against the chunked scan (exp of cumsum differences).
constexpr double kStepVsScanTolerance = 1e-5;

struct StepInputs {
  int64_t len = 0, heads = 0, head_dim = 0, groups = 0, state_size = 0;
  std::vector<float> x;      // (L, H, P)
  std::vector<float> dt;     // (L, H)
  std::vector<float> A;      // (H)
  std::vector<float> B;      // (L, G, N)
  std::vector<float> C;      // (L, G, N)
  std::vector<float> D;      // (H)
  std::vector<float> state;  // (H, P, N) initial
  int64_t hp() const { return heads * head_dim; }
  int64_t gn() const { return groups * state_size; }
};

StepInputs MakeInputs(int64_t len, int64_t heads, int64_t head_dim, int64_t groups,
                      int64_t state_size, uint32_t seed) {
  std::mt19937 rng(seed);
  StepInputs in;
  in.len = len;
  in.heads = heads;
  in.head_dim = head_dim;
  in.groups = groups;
  in.state_size = state_size;
  in.x = RandomFloats(rng, len * in.hp());
  in.dt = RandomFloats(rng, len * heads, 0.01f, 0.2f);
  in.A = RandomFloats(rng, heads, -4.0f, -0.25f);
  in.B = RandomFloats(rng, len * in.gn());
  in.C = RandomFloats(rng, len * in.gn());
  in.D = RandomFloats(rng, heads, 0.5f, 1.5f);
  in.state = RandomFloats(rng, in.hp() * state_size);
  return in;
}

// Step params for token t of `in`, updating `state` and writing `y`.
SsdStepParams StepParams(const StepInputs& in, int64_t t, float* state, float* y) {
  SsdStepParams p;
  p.num_heads = in.heads;
  p.head_dim = in.head_dim;
  p.num_groups = in.groups;
  p.state_size = in.state_size;
  p.x = in.x.data() + t * in.hp();
  p.dt = in.dt.data() + t * in.heads;
  p.A = in.A.data();
  p.B = in.B.data() + t * in.gn();
  p.C = in.C.data() + t * in.gn();
  p.D = in.D.data();
  p.state = state;
  p.y = y;
  return p;
}

TEST(SsdStepTest, MatchesRecurrenceForOneToken) {
  const StepInputs in = MakeInputs(1, 6, 5, 3, 7, 11);
  std::vector<float> state = in.state;
  std::vector<float> y = NaNs(in.hp());
  ASSERT_TRUE(cpu::SsdStep(StepParams(in, 0, state.data(), y.data())).ok());

  std::vector<double> want_state(in.state.begin(), in.state.end());
  std::vector<double> want_y(in.hp());
  const int64_t P = in.head_dim, N = in.state_size;
  for (int64_t h = 0; h < in.heads; ++h) {
    const int64_t g = h / (in.heads / in.groups);
    const double decay = std::exp(double{in.dt[h]} * in.A[h]);
    for (int64_t p = 0; p < P; ++p) {
      double readout = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        double& s = want_state[(h * P + p) * N + n];
        s = decay * s + double{in.dt[h]} * in.x[h * P + p] * in.B[g * N + n];
        readout += s * in.C[g * N + n];
      }
      want_y[h * P + p] = readout + double{in.D[h]} * in.x[h * P + p];
    }
  }
  EXPECT_TRUE(CloseInRelativeL2(y, want_y, kStepTolerance));
  EXPECT_TRUE(CloseInRelativeL2(state, want_state, kStepTolerance));
}

TEST(SsdStepTest, RepeatedStepsMatchScan) {
  for (int64_t groups : {1, 2}) {
    SCOPED_TRACE(groups);
    const StepInputs in = MakeInputs(/*len=*/13, 4, 6, groups, 5, 20 + groups);
    std::vector<float> state = in.state;
    std::vector<float> y_steps = NaNs(in.len * in.hp());
    for (int64_t t = 0; t < in.len; ++t) {
      const absl::Status status =
          cpu::SsdStep(StepParams(in, t, state.data(), y_steps.data() + t * in.hp()));
      ASSERT_TRUE(status.ok()) << status;
    }

    std::vector<float> y_scan = NaNs(in.len * in.hp());
    std::vector<float> state_scan = NaNs(in.state.size());
    SsdScanParams scan;
    scan.seq_len = in.len;
    scan.num_heads = in.heads;
    scan.head_dim = in.head_dim;
    scan.num_groups = in.groups;
    scan.state_size = in.state_size;
    scan.chunk_size = 4;
    scan.x = in.x.data();
    scan.dt = in.dt.data();
    scan.A = in.A.data();
    scan.B = in.B.data();
    scan.C = in.C.data();
    scan.D = in.D.data();
    scan.initial_state = in.state.data();
    scan.y = y_scan.data();
    scan.final_state = state_scan.data();
    ASSERT_TRUE(cpu::SsdScan(scan).ok());
    EXPECT_TRUE(CloseInRelativeL2(y_steps, y_scan, kStepVsScanTolerance)) << "y";
    EXPECT_TRUE(CloseInRelativeL2(state, state_scan, kStepVsScanTolerance)) << "state";
  }
}

TEST(SsdStepTest, RejectsInvalidParams) {
  const StepInputs in = MakeInputs(1, 4, 2, 2, 3, 31);
  std::vector<float> state = in.state;
  std::vector<float> y(in.hp());
  const SsdStepParams valid = StepParams(in, 0, state.data(), y.data());
  SsdStepParams p = valid;
  p.num_groups = 3;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "num_groups (3)"));
  p = valid;
  p.state = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "state"));
  p = valid;
  p.state_size = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "state_size"));
}

// A batch of decode requests laid out as the worker lays them out: each
// request's conv output row [x | B | C] (row stride conv_width, padded), its
// in_proj dt columns (raw, row stride dt_stride, fp32 or bf16), y rows with
// padding, and states scattered in separate allocations.
struct BatchInputs {
  int64_t batch = 0, heads = 0, head_dim = 0, groups = 0, state_size = 0;
  int64_t conv_stride = 0, dt_stride = 0, y_stride = 0;
  std::vector<float> conv;                 // (batch, conv_stride) holding [x | B | C]
  std::vector<float> dt_raw;               // (batch, dt_stride) holding (H)
  std::vector<uint16_t> dt_raw16;          // the same, bf16
  std::vector<float> A, D, dt_bias;        // (H)
  std::vector<std::vector<float>> states;  // batch × (H, P, N)
  int64_t hp() const { return heads * head_dim; }
  int64_t gn() const { return groups * state_size; }
};

BatchInputs MakeBatch(int64_t batch, int64_t heads, int64_t head_dim, int64_t groups, int64_t state_size,
                      uint32_t seed) {
  std::mt19937 rng(seed);
  BatchInputs in;
  in.batch = batch;
  in.heads = heads;
  in.head_dim = head_dim;
  in.groups = groups;
  in.state_size = state_size;
  in.conv_stride = in.hp() + 2 * in.gn() + 3;
  in.dt_stride = heads + 5;
  in.y_stride = in.hp() + 2;
  in.conv = RandomRows(rng, batch, in.hp() + 2 * in.gn(), in.conv_stride);
  in.dt_raw = RandomRows(rng, batch, heads, in.dt_stride, -4.0f, 1.0f);
  in.dt_raw16 = kernel_test::ToBf16(in.dt_raw);
  in.A = RandomFloats(rng, heads, -4.0f, -0.25f);
  in.D = RandomFloats(rng, heads, 0.5f, 1.5f);
  in.dt_bias = RandomFloats(rng, heads, -1.0f, 1.0f);
  for (int64_t r = 0; r < batch; ++r) in.states.push_back(RandomFloats(rng, in.hp() * state_size));
  return in;
}

// The params of requests [first, first + count) of `in`, fused dt, over
// `states` (one pointer per request) and y (count, y_stride).
SsdStepParams BatchParams(const BatchInputs& in, int64_t first, int64_t count, bool bf16_dt,
                          float* const* states, float* y) {
  SsdStepParams p;
  p.num_heads = in.heads;
  p.head_dim = in.head_dim;
  p.num_groups = in.groups;
  p.state_size = in.state_size;
  const float* row = in.conv.data() + first * in.conv_stride;
  p.x = row;
  p.B = row + in.hp();
  p.C = row + in.hp() + in.gn();
  p.x_stride = p.b_stride = p.c_stride = in.conv_stride;
  p.dt = bf16_dt ? static_cast<const void*>(in.dt_raw16.data() + first * in.dt_stride)
                 : static_cast<const void*>(in.dt_raw.data() + first * in.dt_stride);
  p.dt_type = bf16_dt ? ElementType::kBF16 : ElementType::kF32;
  p.dt_stride = in.dt_stride;
  p.dt_bias = in.dt_bias.data();
  p.dt_min = 0.001f;
  p.dt_max = 0.1f;  // clamps some of the softplus values
  p.A = in.A.data();
  p.D = in.D.data();
  p.batch = count;
  p.states = states;
  p.y = y;
  p.y_stride = in.y_stride;
  return p;
}

TEST(SsdStepTest, BatchGivesEachRequestItsOwnCallExactly) {
  for (bool bf16_dt : {false, true}) {
    SCOPED_TRACE(bf16_dt ? "bf16 dt" : "fp32 dt");
    const BatchInputs in = MakeBatch(/*batch=*/5, 6, 5, 3, 8, 41 + bf16_dt);
    std::vector<std::vector<float>> batched = in.states, single = in.states;
    std::vector<float*> batched_ptrs;
    for (auto& s : batched) batched_ptrs.push_back(s.data());
    std::vector<float> y_batched = NaNs(in.batch * in.y_stride), y_single = NaNs(in.batch * in.y_stride);
    const absl::Status status =
        cpu::SsdStep(BatchParams(in, 0, in.batch, bf16_dt, batched_ptrs.data(), y_batched.data()));
    ASSERT_TRUE(status.ok()) << status;
    for (int64_t r = 0; r < in.batch; ++r) {
      SsdStepParams one = BatchParams(in, r, 1, bf16_dt, nullptr, y_single.data() + r * in.y_stride);
      one.state = single[r].data();  // the single-request form: `state`, no `states`
      ASSERT_TRUE(cpu::SsdStep(one).ok());
      EXPECT_TRUE(SameBits(batched[r], single[r])) << "state of request " << r;
      EXPECT_NE(batched[r], in.states[r]);
    }
    // y's padding columns stay NaN in both; the rows must match bit for bit.
    EXPECT_TRUE(SameBits(y_batched, y_single));
    EXPECT_TRUE(CloseInRelativeL2(kernel_test::PackedRows(y_batched, in.batch, in.hp(), in.y_stride),
                                  kernel_test::PackedRows(y_single, in.batch, in.hp(), in.y_stride), 0.0));
  }
}

TEST(SsdStepTest, FusedSoftplusIsDtSoftplusThenTheStep) {
  for (bool bf16_dt : {false, true}) {
    SCOPED_TRACE(bf16_dt ? "bf16 dt" : "fp32 dt");
    const BatchInputs in = MakeBatch(/*batch=*/3, 4, 3, 2, 5, 51 + bf16_dt);
    std::vector<std::vector<float>> fused = in.states, split = in.states;
    std::vector<float*> fused_ptrs, split_ptrs;
    for (int64_t r = 0; r < in.batch; ++r) {
      fused_ptrs.push_back(fused[r].data());
      split_ptrs.push_back(split[r].data());
    }
    std::vector<float> y_fused = NaNs(in.batch * in.y_stride), y_split = NaNs(in.batch * in.y_stride);
    SsdStepParams p = BatchParams(in, 0, in.batch, bf16_dt, fused_ptrs.data(), y_fused.data());
    ASSERT_TRUE(cpu::SsdStep(p).ok());

    std::vector<float> dt = NaNs(in.batch * in.heads);  // (batch, H)
    DtSoftplusParams softplus;
    softplus.rows = in.batch;
    softplus.num_heads = in.heads;
    softplus.dt_raw = p.dt;
    softplus.dt_stride = in.dt_stride;
    softplus.dt_raw_type = p.dt_type;
    softplus.dt_bias = in.dt_bias.data();
    softplus.dt_min = p.dt_min;
    softplus.dt_max = p.dt_max;
    softplus.out = dt.data();
    ASSERT_TRUE(cpu::DtSoftplus(softplus).ok());
    p.dt = dt.data();
    p.dt_type = ElementType::kF32;
    p.dt_stride = 0;
    p.dt_bias = nullptr;
    p.states = split_ptrs.data();
    p.y = y_split.data();
    ASSERT_TRUE(cpu::SsdStep(p).ok());
    EXPECT_TRUE(SameBits(y_fused, y_split));
    for (int64_t r = 0; r < in.batch; ++r) EXPECT_TRUE(SameBits(fused[r], split[r])) << r;
  }
}

TEST(SsdStepTest, BatchOfZeroTouchesNothing) {
  const BatchInputs in = MakeBatch(1, 2, 2, 1, 4, 61);
  SsdStepParams p = BatchParams(in, 0, 0, false, nullptr, nullptr);
  float* no_state = nullptr;
  p.states = &no_state;  // an array of no pointers that are read
  p.x = nullptr;
  EXPECT_TRUE(cpu::SsdStep(p).ok());
}

TEST(SsdStepTest, RejectsInvalidBatchParams) {
  BatchInputs in = MakeBatch(2, 4, 2, 2, 3, 71);
  std::vector<float*> ptrs = {in.states[0].data(), in.states[1].data()};
  std::vector<float> y(2 * in.y_stride);
  const SsdStepParams valid = BatchParams(in, 0, 2, false, ptrs.data(), y.data());
  ASSERT_TRUE(cpu::SsdStep(valid).ok());
  SsdStepParams p = valid;
  p.states = nullptr;
  p.state = in.states[0].data();
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "batch must be 1 without states. Given: 2"));
  p = valid;
  p.state = in.states[0].data();
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "state must be null"));
  p = valid;
  p.batch = -1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "batch"));
  p = valid;
  p.x_stride = in.hp() - 1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "x_stride"));
  p = valid;
  p.y_stride = 1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "y_stride"));
  p = valid;
  p.dt_stride = 1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "dt_stride"));
  p = valid;
  p.b_stride = in.gn() - 1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "b_stride"));
  p = valid;
  p.c_stride = 2;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "c_stride"));
  p = valid;
  p.dt_min = 1.0f;
  p.dt_max = 0.5f;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "dt_min"));
  p = valid;
  p.dt_type = static_cast<ElementType>(7);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "dt_type"));
  p = valid;
  ptrs[1] = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdStep(p), "states[1]"));
}

}  // namespace
}  // namespace tessera
