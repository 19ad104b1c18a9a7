// SsdComposeInitialState on CUDA against the CPU reference: awkward head counts
// and state sizes, 0 to 3 earlier shards, with and without an initial state,
// h_in aliasing the initial state; summaries of later shards hold NaN (never
// read) and the output starts as NaN (every element written). Per element, the
// two may differ by a few fp32 roundings (expf against std::exp, fused
// multiply-adds) relative to the magnitudes folded, since signed terms cancel.
#include <cmath>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/ssd_compose.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::NaNs;
using gpu_test::RandomFloats;
using kernel_test::IsInvalidArgumentMentioning;

// Per element: |gpu - cpu| <= kUlps · 2^-24 · (the recurrence on |terms|).
constexpr double kUlps = 32.0;
constexpr int64_t kShards = 4;

class SsdComposeGpuTest : public GpuTest {};

struct ComposeCase {
  int64_t heads, per_head;
};

// The recurrence on absolute values, in double: the scale of each element's rounding.
std::vector<double> Magnitudes(const ComposeCase& c, int64_t ranks_before,
                               const std::vector<float>& summaries, const float* initial) {
  const int64_t floats = c.heads + c.heads * c.per_head;
  std::vector<double> h(c.heads * c.per_head, 0.0);  // (H, P·N)
  for (size_t e = 0; initial != nullptr && e < h.size(); ++e) h[e] = std::fabs(initial[e]);
  for (int64_t r = 0; r < ranks_before; ++r) {
    const float* summary = summaries.data() + r * floats;
    for (int64_t e = 0; e < static_cast<int64_t>(h.size()); ++e) {
      h[e] = std::exp(static_cast<double>(summary[e / c.per_head])) * h[e] +
             std::fabs(summary[c.heads + e]);
    }
  }
  return h;
}

::testing::AssertionResult CloseElementwise(const std::vector<float>& got,
                                            const std::vector<float>& want,
                                            const std::vector<double>& scale) {
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = kUlps * std::ldexp(scale[i], -24);
    if (!std::isfinite(got[i]) || std::fabs(double{got[i]} - want[i]) > bound) {
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want "
                                           << want[i] << " (bound " << bound << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST_F(SsdComposeGpuTest, MatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const ComposeCase& c : {ComposeCase{1, 1}, {3, 7}, {5, 130}, {24, 64 * 128 + 3}}) {
    const int64_t floats = c.heads + c.heads * c.per_head;  // one shard's summary
    for (int64_t ranks_before = 0; ranks_before <= 3; ++ranks_before) {
      for (const bool with_initial : {false, true}) {
        for (const bool in_place : {false, true}) {
          if (in_place && !with_initial) continue;
          SCOPED_TRACE(absl::StrCat("H ", c.heads, " P·N ", c.per_head, " ranks_before ",
                                    ranks_before, " initial ", with_initial, " in place ",
                                    in_place));
          std::vector<float> summaries = NaNs(kShards * floats);  // (kShards, H + H·P·N)
          for (int64_t r = 0; r < ranks_before; ++r) {
            const auto log_decay = RandomFloats(rng, c.heads, -3.0f, 0.0f);
            const auto state = RandomFloats(rng, c.heads * c.per_head);
            std::copy(log_decay.begin(), log_decay.end(), summaries.begin() + r * floats);
            std::copy(state.begin(), state.end(), summaries.begin() + r * floats + c.heads);
          }
          const auto initial = RandomFloats(rng, c.heads * c.per_head);
          SsdComposeParams p;
          p.ranks_before = ranks_before;
          p.num_heads = c.heads;
          p.per_head = c.per_head;
          p.summaries = summaries.data();
          p.initial_state = with_initial ? initial.data() : nullptr;
          std::vector<float> want = NaNs(c.heads * c.per_head);
          p.h_in = want.data();
          ASSERT_TRUE(cpu::SsdComposeInitialState(p).ok());

          DeviceArray<float> d_summaries(summaries), d_initial(initial),
              d_h_in(NaNs(c.heads * c.per_head));
          p.summaries = d_summaries.get();
          p.initial_state = with_initial ? d_initial.get() : nullptr;
          p.h_in = in_place ? d_initial.get() : d_h_in.get();
          const absl::Status status = cuda::SsdComposeInitialState(p, nullptr);
          ASSERT_TRUE(status.ok()) << status;
          const std::vector<float> got = in_place ? d_initial.Download() : d_h_in.Download();
          if (ranks_before == 0 && !with_initial) {
            EXPECT_EQ(got, std::vector<float>(c.heads * c.per_head, 0.0f));  // zeros, exactly
          } else {
            EXPECT_TRUE(CloseElementwise(
                got, want,
                Magnitudes(c, ranks_before, summaries, with_initial ? initial.data() : nullptr)));
          }
        }
      }
    }
  }
}

TEST_F(SsdComposeGpuTest, RejectsBadParams) {
  DeviceArray<float> d_buf(std::vector<float>(64, 0.0f));
  SsdComposeParams p;
  p.ranks_before = 1;
  p.num_heads = 2;
  p.per_head = 4;
  p.summaries = d_buf.get();
  p.h_in = d_buf.get() + 32;
  ASSERT_TRUE(cuda::SsdComposeInitialState(p, nullptr).ok());
  SsdComposeParams bad = p;
  bad.summaries = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::SsdComposeInitialState(bad, nullptr), "summaries"));
  bad = p;
  bad.per_head = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::SsdComposeInitialState(bad, nullptr), "per_head"));
  bad = p;
  bad.ranks_before = -2;
  EXPECT_TRUE(
      IsInvalidArgumentMentioning(cuda::SsdComposeInitialState(bad, nullptr), "ranks_before"));
}

}  // namespace
}  // namespace tessera
