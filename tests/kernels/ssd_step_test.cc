// SsdStep, the decode update, against the recurrence in double for one token,
// and repeated over a sequence against SsdScan over the same tokens: decode must
// continue exactly where a chunked prefill left off.
#include "kernels/ssd_step.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/ssd_scan.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomFloats;

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

}  // namespace
}  // namespace tessera
