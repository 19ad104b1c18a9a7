// SsdScan against the token-by-token recurrence in double, and against itself
// under the decompositions the engine relies on: splitting a sequence at any
// token (shards, prefill continued), and adding the initial state afterwards
// (context parallelism's SsdScan(0) + SsdAddInitialState(h_in)).
//
// Built twice. As kernel_ssd_scan_test (label unit) it holds the CPU tests
// bench/CMakeLists.txt) it holds the CUDA tests: bf16 x, B, C on tensor cores
// against the CPU fp32 reference, by the flash-attention rule (within 2x the
// error of a plain implementation that rounds its inputs and its output to
// bf16, both measured against the reference on the unrounded inputs), over
// awkward lengths, chunk sizes, strides, groups, initial and aliased final
// states, D null, and the nemotronh-8b layer; fp32 at that layer. Every GPU
// test skips cleanly without a device.
#include "kernels/ssd_scan.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::NaNs;
using kernel_test::RandomFloats;
using kernel_test::RandomRows;

// Chunked fp32 against the double recurrence (relative L2 over y, state, log_decay).
constexpr double kScanTolerance = 1e-5;
// Two fp32 runs of the same math grouped differently (split, state added later).
constexpr double kRegroupTolerance = 1e-5;

struct SsdShape {
  int64_t seq_len, heads, head_dim, groups, state_size, chunk_size;
};

// Inputs of one scan. Strided layouts put each row inside a wider row padded
// with NaN, as x, B, C sit inside the conv output and dt inside in_proj's.
struct SsdInputs {
  SsdShape shape{};
  bool strided = false;
  int64_t x_stride = 0, dt_stride = 0, b_stride = 0, c_stride = 0;  // row pitch in memory
  std::vector<float> x;              // (L, x_stride) holding (L, H, P)
  std::vector<float> dt;             // (L, dt_stride) holding (L, H)
  std::vector<float> A;              // (H)
  std::vector<float> B;              // (L, b_stride) holding (L, G, N)
  std::vector<float> C;              // (L, c_stride) holding (L, G, N)
  std::vector<float> D;              // (H)
  std::vector<float> initial_state;  // (H, P, N)
  int64_t state_elems() const { return shape.heads * shape.head_dim * shape.state_size; }
  int64_t y_elems(int64_t len) const { return len * shape.heads * shape.head_dim; }
};

SsdInputs MakeInputs(const SsdShape& s, uint32_t seed, bool strided) {
  std::mt19937 rng(seed);
  const int64_t hp = s.heads * s.head_dim;
  const int64_t gn = s.groups * s.state_size;
  SsdInputs in;
  in.shape = s;
  in.strided = strided;
  in.x_stride = strided ? hp + 3 : hp;
  in.dt_stride = strided ? s.heads + 1 : s.heads;
  in.b_stride = strided ? gn + 2 : gn;
  in.c_stride = strided ? gn + 5 : gn;
  in.x = RandomRows(rng, s.seq_len, hp, in.x_stride);
  in.dt = RandomRows(rng, s.seq_len, s.heads, in.dt_stride, 0.01f, 0.2f);
  in.A = RandomFloats(rng, s.heads, -4.0f, -0.25f);
  in.B = RandomRows(rng, s.seq_len, gn, in.b_stride);
  in.C = RandomRows(rng, s.seq_len, gn, in.c_stride);
  in.D = RandomFloats(rng, s.heads, 0.5f, 1.5f);
  in.initial_state = RandomFloats(rng, in.state_elems());
  return in;
}

// Params for tokens [begin, begin + len); outputs and state left to the caller.
SsdScanParams ScanParams(const SsdInputs& in, int64_t begin, int64_t len) {
  const SsdShape& s = in.shape;
  SsdScanParams p;
  p.seq_len = len;
  p.num_heads = s.heads;
  p.head_dim = s.head_dim;
  p.num_groups = s.groups;
  p.state_size = s.state_size;
  p.chunk_size = s.chunk_size;
  p.x = in.x.data() + begin * in.x_stride;
  p.dt = in.dt.data() + begin * in.dt_stride;
  p.A = in.A.data();
  p.B = in.B.data() + begin * in.b_stride;
  p.C = in.C.data() + begin * in.c_stride;
  if (in.strided) {  // packed inputs go through the "0 means packed" path
    p.x_stride = in.x_stride;
    p.dt_stride = in.dt_stride;
    p.b_stride = in.b_stride;
    p.c_stride = in.c_stride;
  }
  return p;
}

struct ScanOutputs {
  std::vector<float> y;            // (len, H, P)
  std::vector<float> final_state;  // (H, P, N)
  std::vector<float> log_decay;    // (H)
};

// Runs SsdScan over tokens [begin, begin + len) into NaN-poisoned outputs.
ScanOutputs RunScan(const SsdInputs& in, int64_t begin, int64_t len,
                    const float* initial_state, bool with_D) {
  ScanOutputs out{NaNs(in.y_elems(len)), NaNs(in.state_elems()), NaNs(in.shape.heads)};
  SsdScanParams p = ScanParams(in, begin, len);
  p.initial_state = initial_state;
  p.D = with_D ? in.D.data() : nullptr;
  p.y = out.y.data();
  p.final_state = out.final_state.data();
  p.log_decay = out.log_decay.data();
  const absl::Status status = cpu::SsdScan(p);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

struct ReferenceOutputs {
  std::vector<double> y, final_state, log_decay;
};

// h_t = exp(dt_t·A)·h_{t-1} + dt_t·x_t⊗B_t;  y_t = h_t·C_t + D·x_t, in double.
ReferenceOutputs RecurrenceReference(const SsdInputs& in, bool with_initial_state,
                                     bool with_D) {
  const SsdShape& s = in.shape;
  const int64_t P = s.head_dim, N = s.state_size;
  ReferenceOutputs ref;
  ref.y.assign(in.y_elems(s.seq_len), 0.0);
  ref.final_state.assign(in.state_elems(), 0.0);
  if (with_initial_state) {
    ref.final_state.assign(in.initial_state.begin(), in.initial_state.end());
  }
  ref.log_decay.assign(s.heads, 0.0);
  for (int64_t t = 0; t < s.seq_len; ++t) {
    for (int64_t h = 0; h < s.heads; ++h) {
      const int64_t g = h / (s.heads / s.groups);
      const double dt = in.dt[t * in.dt_stride + h];
      const double decay = std::exp(dt * in.A[h]);
      ref.log_decay[h] += dt * in.A[h];
      for (int64_t p = 0; p < P; ++p) {
        const double x = in.x[t * in.x_stride + h * P + p];
        double readout = 0.0;
        for (int64_t n = 0; n < N; ++n) {
          double& state = ref.final_state[(h * P + p) * N + n];
          state = decay * state + dt * x * in.B[t * in.b_stride + g * N + n];
          readout += state * in.C[t * in.c_stride + g * N + n];
        }
        ref.y[(t * s.heads + h) * P + p] = readout + (with_D ? in.D[h] * x : 0.0);
      }
    }
  }
  return ref;
}

std::string Describe(const SsdShape& s) {
  return absl::StrCat("L=", s.seq_len, " H=", s.heads, " P=", s.head_dim, " G=", s.groups,
                      " N=", s.state_size, " Q=", s.chunk_size);
}

void ExpectScanMatchesRecurrence(const SsdShape& shape, uint32_t seed, bool with_initial_state,
                                 bool with_D) {
  SCOPED_TRACE(absl::StrCat(Describe(shape), " seed=", seed, " initial=", with_initial_state,
                            " D=", with_D));
  const SsdInputs in = MakeInputs(shape, seed, /*strided=*/seed % 2 == 1);
  const ScanOutputs got = RunScan(in, 0, shape.seq_len,
                                  with_initial_state ? in.initial_state.data() : nullptr, with_D);
  const ReferenceOutputs want = RecurrenceReference(in, with_initial_state, with_D);
  EXPECT_TRUE(CloseInRelativeL2(got.y, want.y, kScanTolerance)) << "y";
  EXPECT_TRUE(CloseInRelativeL2(got.final_state, want.final_state, kScanTolerance)) << "state";
  EXPECT_TRUE(CloseInRelativeL2(got.log_decay, want.log_decay, kScanTolerance)) << "log_decay";
}

TEST(SsdScanTest, MatchesRecurrenceAroundChunkBoundaries) {
  constexpr int64_t kQ = 8;
  uint32_t seed = 100;
  for (int64_t len : {int64_t{1}, kQ, kQ + 3, 5 * kQ + 7}) {
    for (int64_t groups : {1, 3}) {
      for (bool with_initial_state : {false, true}) {
        for (bool with_D : {false, true}) {
          const SsdShape shape{len, /*heads=*/6, /*head_dim=*/5, groups, /*state_size=*/7, kQ};
          ExpectScanMatchesRecurrence(shape, seed++, with_initial_state, with_D);
        }
      }
    }
  }
}

TEST(SsdScanTest, MatchesRecurrenceForManyChunksAndOddChunkSizes) {
  ExpectScanMatchesRecurrence({203, 4, 8, 2, 16, 16}, 7, true, true);   // 13 chunks
  ExpectScanMatchesRecurrence({20, 2, 3, 2, 4, 64}, 8, true, true);     // chunk > L
  ExpectScanMatchesRecurrence({37, 3, 4, 1, 5, 1}, 9, true, false);     // chunk of 1
  ExpectScanMatchesRecurrence({130, 8, 16, 8, 32, 128}, 10, false, true);
}

TEST(SsdScanTest, SplitSequenceMatchesWholeSequence) {
  constexpr int64_t kQ = 8;
  const SsdShape shape{5 * kQ + 7, 4, 6, 2, 5, kQ};
  const SsdInputs in = MakeInputs(shape, 21, /*strided=*/true);
  const ScanOutputs whole = RunScan(in, 0, shape.seq_len, in.initial_state.data(), true);
  const int64_t P = shape.head_dim, H = shape.heads;
  for (int64_t split : {int64_t{1}, kQ / 2, kQ, 2 * kQ, 2 * kQ + 3, shape.seq_len - 1}) {
    SCOPED_TRACE(absl::StrCat("split=", split));
    const ScanOutputs head = RunScan(in, 0, split, in.initial_state.data(), true);
    const ScanOutputs tail =
        RunScan(in, split, shape.seq_len - split, head.final_state.data(), true);
    std::vector<float> y = head.y;
    y.insert(y.end(), tail.y.begin(), tail.y.end());
    ASSERT_EQ(y.size(), static_cast<size_t>(shape.seq_len * H * P));
    EXPECT_TRUE(CloseInRelativeL2(y, whole.y, kRegroupTolerance)) << "y";
    EXPECT_TRUE(CloseInRelativeL2(tail.final_state, whole.final_state, kRegroupTolerance));
    std::vector<float> log_decay(H);
    for (int64_t h = 0; h < H; ++h) log_decay[h] = head.log_decay[h] + tail.log_decay[h];
    EXPECT_TRUE(CloseInRelativeL2(log_decay, whole.log_decay, kRegroupTolerance));
  }
}

// SsdAddInitialState params for the whole of `in`, writing into `out`.
SsdAddInitialStateParams AddInitialStateParams(const SsdInputs& in, ScanOutputs& out) {
  const SsdShape& s = in.shape;
  SsdAddInitialStateParams p;
  p.seq_len = s.seq_len;
  p.num_heads = s.heads;
  p.head_dim = s.head_dim;
  p.num_groups = s.groups;
  p.state_size = s.state_size;
  p.dt = in.dt.data();
  p.dt_stride = in.strided ? in.dt_stride : 0;
  p.A = in.A.data();
  p.C = in.C.data();
  p.c_stride = in.strided ? in.c_stride : 0;
  p.initial_state = in.initial_state.data();
  p.y = out.y.data();
  p.final_state = out.final_state.data();
  return p;
}

TEST(SsdScanTest, ZeroStateScanPlusAddedInitialStateMatchesScanFromIt) {
  constexpr int64_t kQ = 8;
  uint32_t seed = 300;
  for (int64_t len : {int64_t{1}, kQ + 3, 5 * kQ + 7}) {
    for (int64_t groups : {1, 3}) {
      const SsdShape shape{len, 6, 5, groups, 7, kQ};
      SCOPED_TRACE(Describe(shape));
      const SsdInputs in = MakeInputs(shape, seed++, /*strided=*/groups == 3);
      const ScanOutputs from_state = RunScan(in, 0, len, in.initial_state.data(), true);
      ScanOutputs from_zero = RunScan(in, 0, len, nullptr, true);
      const absl::Status status = cpu::SsdAddInitialState(AddInitialStateParams(in, from_zero));
      ASSERT_TRUE(status.ok()) << status;
      EXPECT_TRUE(CloseInRelativeL2(from_zero.y, from_state.y, kRegroupTolerance)) << "y";
      EXPECT_TRUE(CloseInRelativeL2(from_zero.final_state, from_state.final_state,
                                    kRegroupTolerance)) << "state";
      const ReferenceOutputs want = RecurrenceReference(in, false, true);
      EXPECT_TRUE(CloseInRelativeL2(from_zero.log_decay, want.log_decay, kScanTolerance));
    }
  }
}

TEST(SsdScanTest, EmptySequencePassesStateThrough) {
  const SsdShape shape{0, 4, 3, 2, 5, 8};
  const SsdInputs in = MakeInputs(shape, 41, false);
  SsdScanParams p;  // no per-token pointers: nothing is read at L = 0
  p.num_heads = shape.heads;
  p.head_dim = shape.head_dim;
  p.num_groups = shape.groups;
  p.state_size = shape.state_size;
  p.chunk_size = shape.chunk_size;
  p.initial_state = in.initial_state.data();
  std::vector<float> final_state = NaNs(in.state_elems());
  std::vector<float> log_decay = NaNs(shape.heads);
  p.final_state = final_state.data();
  p.log_decay = log_decay.data();
  ASSERT_TRUE(cpu::SsdScan(p).ok());
  EXPECT_EQ(final_state, in.initial_state);
  EXPECT_EQ(log_decay, std::vector<float>(shape.heads, 0.0f));

  p.initial_state = nullptr;  // zeros in, zeros out
  ASSERT_TRUE(cpu::SsdScan(p).ok());
  EXPECT_EQ(final_state, std::vector<float>(in.state_elems(), 0.0f));
}

TEST(SsdScanTest, FinalStateMayAliasInitialState) {
  const SsdShape shape{19, 4, 5, 2, 6, 8};
  const SsdInputs in = MakeInputs(shape, 51, true);
  const ScanOutputs separate = RunScan(in, 0, shape.seq_len, in.initial_state.data(), true);
  std::vector<float> state = in.initial_state;  // in and out
  std::vector<float> y = NaNs(in.y_elems(shape.seq_len));
  SsdScanParams p = ScanParams(in, 0, shape.seq_len);
  p.D = in.D.data();
  p.initial_state = state.data();
  p.final_state = state.data();
  p.y = y.data();
  ASSERT_TRUE(cpu::SsdScan(p).ok());
  EXPECT_EQ(state, separate.final_state);
  EXPECT_EQ(y, separate.y);
}

TEST(SsdAddInitialStateTest, EmptySequenceAddsStateToFinal) {
  const SsdShape shape{0, 2, 3, 1, 4, 8};
  const SsdInputs in = MakeInputs(shape, 61, false);
  std::mt19937 rng(62);
  const std::vector<float> zero_state_final = RandomFloats(rng, in.state_elems());
  ScanOutputs out{{}, zero_state_final, {}};
  ASSERT_TRUE(cpu::SsdAddInitialState(AddInitialStateParams(in, out)).ok());
  std::vector<double> want(in.state_elems());
  for (size_t i = 0; i < want.size(); ++i) {
    want[i] = double{zero_state_final[i]} + in.initial_state[i];  // Λ = exp(0) = 1
  }
  EXPECT_TRUE(CloseInRelativeL2(out.final_state, want, kScanTolerance));
}

TEST(SsdScanTest, RejectsInvalidParams) {
  const SsdShape shape{10, 6, 4, 2, 3, 4};
  const SsdInputs in = MakeInputs(shape, 71, false);
  std::vector<float> y = NaNs(in.y_elems(shape.seq_len));
  SsdScanParams valid = ScanParams(in, 0, shape.seq_len);
  valid.y = y.data();
  ASSERT_TRUE(cpu::SsdScan(valid).ok());

  SsdScanParams p = valid;
  p.num_groups = 4;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdScan(p), "num_groups (4)"));
  p = valid;
  p.chunk_size = 0;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdScan(p), "chunk_size"));
  p = valid;
  p.x = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdScan(p), "x must not be null"));
  p = valid;
  p.b_stride = 5;  // < G·N = 6
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdScan(p), "b_stride"));
  p = valid;
  p.seq_len = -1;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdScan(p), "seq_len"));

  ScanOutputs out{y, NaNs(in.state_elems()), {}};
  SsdAddInitialStateParams add = AddInitialStateParams(in, out);
  add.initial_state = nullptr;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdAddInitialState(add), "initial_state"));
}

TEST(SsdScanTest, TypeIsCheckedAndBf16IsLeftToCuda) {
  const SsdShape shape{10, 6, 4, 2, 3, 4};
  const SsdInputs in = MakeInputs(shape, 81, false);
  std::vector<float> y = NaNs(in.y_elems(shape.seq_len));
  SsdScanParams p = ScanParams(in, 0, shape.seq_len);
  p.y = y.data();
  p.type = static_cast<ElementType>(7);
  EXPECT_TRUE(IsInvalidArgumentMentioning(cpu::SsdScan(p), "type must be kF32 or kBF16. Given: 7"));
  p.type = ElementType::kBF16;
  const absl::Status status = cpu::SsdScan(p);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_NE(status.message().find("SsdScan: the CPU backend computes fp32 operands. Given: bf16"),
            absl::string_view::npos)
      << status;
}


}  // namespace
}  // namespace tessera
