// SsdComposeInitialState on the CPU against the recurrence in double:
// h_in(0) = initial (or 0), h_in(r) = exp(log Λ_{r-1}) · h_in(r-1) + S_{r-1}.
// Awkward head counts and state sizes, 0 to 3 earlier shards, with and without
// an initial state; summaries of later shards hold NaN (never read) and the
// output starts as NaN (every element written). The tolerance is per element
// and relative to the magnitudes folded (the same recurrence on |terms|), since
// a sum of signed terms may cancel: a few fp32 roundings per shard.
#include "kernels/ssd_compose.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomFloats;

// Per element: |got - exact| <= kComposeUlps · 2^-24 · (the recurrence on |terms|).
constexpr double kComposeUlps = 16.0;
constexpr int64_t kShards = 4;              // summaries gathered; ranks_before <= 3 are read

struct ComposeCase {
  int64_t heads, per_head;
};

const ComposeCase kCases[] = {{1, 1}, {3, 7}, {5, 130}, {8, 64 * 16 + 3}};

// (kShards, H + H·P·N): per shard [log Λ (H) | S (H, P, N)]; shards at and
// after `ranks_before` are NaN, so reading them poisons the output.
std::vector<float> Summaries(std::mt19937& rng, const ComposeCase& c, int64_t ranks_before) {
  const int64_t floats = c.heads + c.heads * c.per_head;
  std::vector<float> all = NaNs(kShards * floats);
  for (int64_t r = 0; r < ranks_before; ++r) {
    const std::vector<float> log_decay = RandomFloats(rng, c.heads, -3.0f, 0.0f);
    const std::vector<float> state = RandomFloats(rng, c.heads * c.per_head);
    std::copy(log_decay.begin(), log_decay.end(), all.begin() + r * floats);
    std::copy(state.begin(), state.end(), all.begin() + r * floats + c.heads);
  }
  return all;
}

// The recurrence in double, on the values or (magnitude) on their absolute values.
std::vector<double> Reference(const ComposeCase& c, int64_t ranks_before,
                              const std::vector<float>& summaries, const float* initial,
                              bool magnitude = false) {
  const int64_t floats = c.heads + c.heads * c.per_head;
  std::vector<double> h(c.heads * c.per_head, 0.0);  // (H, P·N)
  if (initial != nullptr) h.assign(initial, initial + c.heads * c.per_head);
  for (double& e : h) e = magnitude ? std::fabs(e) : e;
  for (int64_t r = 0; r < ranks_before; ++r) {
    const float* summary = summaries.data() + r * floats;
    for (int64_t head = 0; head < c.heads; ++head) {
      const double decay = std::exp(static_cast<double>(summary[head]));
      for (int64_t i = 0; i < c.per_head; ++i) {
        const int64_t e = head * c.per_head + i;
        const double s = summary[c.heads + e];
        h[e] = decay * h[e] + (magnitude ? std::fabs(s) : s);
      }
    }
  }
  return h;
}

// Every element finite and within the per-element bound of the exact value.
::testing::AssertionResult CloseToRecurrence(const std::vector<float>& got, const ComposeCase& c,
                                             int64_t ranks_before,
                                             const std::vector<float>& summaries,
                                             const float* initial) {
  const std::vector<double> want = Reference(c, ranks_before, summaries, initial);
  const std::vector<double> scale = Reference(c, ranks_before, summaries, initial, true);
  double worst = 0.0;  // in units of the bound
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      return ::testing::AssertionFailure() << "element " << i << " is " << got[i];
    }
    const double bound = kComposeUlps * std::ldexp(scale[i], -24);
    const double err = std::fabs(got[i] - want[i]);
    if (err > bound) {
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want "
                                           << want[i] << ", error " << err << " > " << bound;
    }
    if (bound > 0.0) worst = std::max(worst, err / bound);
  }
  return ::testing::AssertionSuccess() << "worst error " << worst << " of the bound";
}

TEST(SsdComposeTest, MatchesTheRecurrence) {
  std::mt19937 rng(std::random_device{}());
  for (const ComposeCase& c : kCases) {
    for (int64_t ranks_before = 0; ranks_before <= 3; ++ranks_before) {
      for (const bool with_initial : {false, true}) {
        SCOPED_TRACE(absl::StrCat("H ", c.heads, " P·N ", c.per_head, " ranks_before ",
                                  ranks_before, " initial ", with_initial));
        const std::vector<float> summaries = Summaries(rng, c, ranks_before);
        const std::vector<float> initial = RandomFloats(rng, c.heads * c.per_head);
        std::vector<float> h_in = NaNs(c.heads * c.per_head);
        SsdComposeParams p;
        p.ranks_before = ranks_before;
        p.num_heads = c.heads;
        p.per_head = c.per_head;
        p.summaries = summaries.data();
        p.initial_state = with_initial ? initial.data() : nullptr;
        p.h_in = h_in.data();
        ASSERT_TRUE(cpu::SsdComposeInitialState(p).ok());
        if (ranks_before == 0 && !with_initial) {
          EXPECT_EQ(h_in, std::vector<float>(c.heads * c.per_head, 0.0f));  // zeros, exactly
          continue;
        }
        EXPECT_TRUE(CloseToRecurrence(h_in, c, ranks_before, summaries, p.initial_state));
      }
    }
  }
}

TEST(SsdComposeTest, HInMayAliasTheInitialState) {
  std::mt19937 rng(std::random_device{}());
  const ComposeCase c{3, 33};
  const std::vector<float> summaries = Summaries(rng, c, 2);
  std::vector<float> state = RandomFloats(rng, c.heads * c.per_head);
  const std::vector<float> initial = state;
  SsdComposeParams p;
  p.ranks_before = 2;
  p.num_heads = c.heads;
  p.per_head = c.per_head;
  p.summaries = summaries.data();
  p.initial_state = state.data();
  p.h_in = state.data();
  ASSERT_TRUE(cpu::SsdComposeInitialState(p).ok());
  EXPECT_TRUE(CloseToRecurrence(state, c, 2, summaries, initial.data()));
}

TEST(SsdComposeTest, RejectsInvalidParams) {
  std::vector<float> summaries(2 * (2 + 2 * 4)), h_in(2 * 4);
  SsdComposeParams valid;
  valid.ranks_before = 2;
  valid.num_heads = 2;
  valid.per_head = 4;
  valid.summaries = summaries.data();
  valid.h_in = h_in.data();
  ASSERT_TRUE(cpu::SsdComposeInitialState(valid).ok());
  SsdComposeParams p = valid;
  p.ranks_before = -1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdComposeInitialState(p),
                                          "SsdComposeInitialState: ranks_before must be >= 0"));
  p = valid;
  p.num_heads = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdComposeInitialState(p), "num_heads"));
  p = valid;
  p.per_head = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdComposeInitialState(p), "per_head"));
  p = valid;
  p.summaries = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdComposeInitialState(p),
                                          "summaries must not be null"));
  p.ranks_before = 0;  // no summary is read: null is fine
  EXPECT_TRUE(cpu::SsdComposeInitialState(p).ok());
  p = valid;
  p.h_in = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdComposeInitialState(p), "h_in must not be null"));
}

}  // namespace
}  // namespace tessera
