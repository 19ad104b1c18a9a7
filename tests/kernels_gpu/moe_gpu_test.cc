// cuda::MoeRoute and cuda::MoeExperts against the CPU references on fresh
// random inputs of awkward shapes.
//   MoeRoute: both rules, group limits, correction bias, strided logits with
//   NaN padding, and logits drawn from a handful of values so that ties are
//   everywhere: the ids must equal the CPU's exactly, the weights within 1e-6.
//   MoeExperts: fp32 within 1e-5 (relative L2) of cpu::MoeExperts; bf16 by the
//   flash-attention rule of linear_gpu_test: its error against a float64
//   computation on the unrounded inputs is at most twice that of a plain bf16
//   implementation (inputs rounded, exact sums, every intermediate (h, act,
//   each expert's output) rounded to bf16, the weighted sum into the fp32 y).
//   Both activations; T = 1, 7, 300, 512, 1024, 4096; experts that get no
//   token, an expert that gets every token, top_k = E, a token choosing one
//   expert twice (the up projection then reads one x row twice in a tile);
//   experts whose last m-tile ends within its first 64 rows (the wgmma
//   kernel's second warpgroup idles); K not a multiple of 64 beside NaN
//   padding in x (the gathered loads must stop at H); strided x and y (padding
//   must keep its value). The workspace is poisoned with NaN bytes, so a read of
//   anything the op did not write shows up in y. The bf16 cases cover both
//   tensor-core kernels: wgmma when T·k >= 64·E with H, I and x's stride
//   multiples of 8 (marked "sm90" below), mma.sync otherwise ("mma").
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/moe_experts.h"
#include "kernels/moe_route.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace tessera {
namespace {

using gpu_test::DeviceArray;
using gpu_test::GpuTest;
using gpu_test::NaNs;
using gpu_test::RandomFloats;
using gpu_test::RandomRows;
using kernel_test::CloseInRelativeL2;
using kernel_test::IsInvalidArgumentMentioning;
using kernel_test::PackedRows;

constexpr double kWeightTolerance = 1e-6;   // MoeRoute weights, absolute (they are O(1))
constexpr double kExpertsTolerance = 1e-5;  // MoeExperts fp32 against the CPU, relative L2
constexpr float kPadding = 7.0f;            // y padding columns must keep this value

class MoeGpuTest : public GpuTest {};

// ----------------------------------------------------------------- routing

struct RouteCase {
  int64_t tokens, experts, top_k;
  MoeRouteKind kind;
  int64_t n_group = 1, topk_group = 1;
  bool bias = false, norm = true;
  float scale = 1.0f;
  int64_t stride_pad = 0;
  int levels = 0;  // > 0: logits take one of `levels` values (ties everywhere)
};

std::string Describe(const RouteCase& c) {
  return absl::StrCat(c.kind == MoeRouteKind::kSoftmaxTopK ? "softmax" : "sigmoid", " T ", c.tokens, " E ",
                      c.experts, " k ", c.top_k, " groups ", c.n_group, "/", c.topk_group, " bias ", c.bias,
                      " norm ", c.norm, " scale ", c.scale, " pad ", c.stride_pad, " levels ", c.levels);
}

const RouteCase kRouteCases[] = {
    {1, 2, 1, MoeRouteKind::kSoftmaxTopK},
    {7, 40, 8, MoeRouteKind::kSoftmaxTopK, 1, 1, false, true, 1.0f, 5},
    {300, 128, 6, MoeRouteKind::kSoftmaxTopK},
    {300, 128, 6, MoeRouteKind::kSoftmaxTopK, 1, 1, false, true, 1.0f, 3, 4},
    {65, 72, 72, MoeRouteKind::kSoftmaxTopK, 1, 1, false, true, 1.0f, 0, 2},  // top_k = E
    {4096, 62, 8, MoeRouteKind::kSoftmaxTopK},
    {1, 8, 3, MoeRouteKind::kSigmoidBiased, 4, 2},
    {300, 128, 6, MoeRouteKind::kSigmoidBiased, 1, 1, true, true, 2.5f},  // nemotron-3-nano
    {300, 128, 6, MoeRouteKind::kSigmoidBiased, 1, 1, true, true, 2.5f, 7, 3},
    {513, 256, 8, MoeRouteKind::kSigmoidBiased, 8, 4, true, true, 2.5f, 1},  // DeepSeek-V3 style
    {513, 256, 8, MoeRouteKind::kSigmoidBiased, 8, 4, true, true, 2.5f, 0, 4},
    {33, 16, 16, MoeRouteKind::kSigmoidBiased, 1, 1, true, false, 1.0f},  // top_k = E, not normalised
    {77, 30, 5, MoeRouteKind::kSigmoidBiased, 15, 3, false, false, 0.5f, 2, 2},  // groups of 2
    {2048, 1024, 4, MoeRouteKind::kSoftmaxTopK},
    {9, 2048, 12, MoeRouteKind::kSigmoidBiased, 16, 3, true, true, 1.0f, 0, 3},
};

TEST_F(MoeGpuTest, RouteMatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const RouteCase& c : kRouteCases) {
    SCOPED_TRACE(Describe(c));
    const int64_t stride = c.experts + c.stride_pad;
    std::vector<float> logits = RandomRows(rng, c.tokens, c.experts, stride, -4.0f, 4.0f);  // NaN padding
    if (c.levels > 0) {
      std::uniform_int_distribution<int> level(0, c.levels - 1);
      for (int64_t t = 0; t < c.tokens; ++t) {
        for (int64_t e = 0; e < c.experts; ++e) logits[t * stride + e] = 0.5f * level(rng) - 1.0f;
      }
    }
    std::vector<float> bias = RandomFloats(rng, c.experts, -0.2f, 0.2f);
    if (c.levels > 0) {  // ties survive the bias only if it repeats too
      for (int64_t e = 0; e < c.experts; ++e) bias[e] = 0.125f * (e % 3);
    }
    MoeRouteParams p;
    p.tokens = c.tokens;
    p.experts = c.experts;
    p.top_k = c.top_k;
    p.kind = c.kind;
    p.n_group = c.n_group;
    p.topk_group = c.topk_group;
    p.norm_topk_prob = c.norm;
    p.routed_scaling_factor = c.scale;
    p.logits_stride = c.stride_pad > 0 ? stride : 0;
    std::vector<int32_t> want_ids(c.tokens * c.top_k, -7);
    std::vector<float> want_weights = NaNs(c.tokens * c.top_k);
    p.logits = logits.data();
    p.correction_bias = c.bias ? bias.data() : nullptr;
    p.expert_ids = want_ids.data();
    p.expert_weights = want_weights.data();
    ASSERT_TRUE(cpu::MoeRoute(p).ok());

    DeviceArray<float> d_logits(logits), d_bias(bias), d_weights(NaNs(c.tokens * c.top_k));
    DeviceArray<int32_t> d_ids(std::vector<int32_t>(c.tokens * c.top_k, -7));
    p.logits = d_logits.get();
    p.correction_bias = c.bias ? d_bias.get() : nullptr;
    p.expert_ids = d_ids.get();
    p.expert_weights = d_weights.get();
    const absl::Status status = cuda::MoeRoute(p, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const std::vector<int32_t> ids = d_ids.Download();
    const std::vector<float> weights = d_weights.Download();
    int64_t id_mismatches = 0;
    for (size_t i = 0; i < ids.size(); ++i) id_mismatches += ids[i] != want_ids[i];
    EXPECT_EQ(id_mismatches, 0) << "first: token " << [&] {
      for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] != want_ids[i]) return static_cast<int64_t>(i) / c.top_k;
      }
      return int64_t{-1};
    }();
    double worst = 0.0;
    for (size_t i = 0; i < weights.size(); ++i) {
      ASSERT_TRUE(std::isfinite(weights[i])) << "weight " << i << " not written";
      worst = std::max(worst, std::fabs(double{weights[i]} - want_weights[i]));
    }
    EXPECT_LE(worst, kWeightTolerance * std::max(1.0f, c.scale));
  }
}

TEST_F(MoeGpuTest, RouteRefusesBadParams) {
  MoeRouteParams p;
  p.tokens = 1;
  p.experts = 4096;
  p.top_k = 2;
  DeviceArray<float> d_buf(std::vector<float>(4096, 0.0f));
  DeviceArray<int32_t> d_ids(std::vector<int32_t>(2, 0));
  p.logits = d_buf.get();
  p.expert_ids = d_ids.get();
  p.expert_weights = d_buf.get();
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MoeRoute(p, nullptr), "experts"));
  p.experts = 8;
  p.top_k = 9;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MoeRoute(p, nullptr), "top_k"));
  p.top_k = 2;
  p.tokens = 0;
  EXPECT_TRUE(cuda::MoeRoute(p, nullptr).ok());
}

// ----------------------------------------------------------------- experts

enum class Routing {
  kRandom,        // k distinct experts per token, uniformly
  kEvenOnly,      // only even experts: the odd ones get no token
  kOneGetsAll,    // expert E/2 in every token (at a random slot), the rest random
  kRepeats,       // each slot uniform over all experts: a token may pick one expert twice
};

struct ExpertsCase {
  int64_t tokens, hidden, experts, top_k, intermediate;
  MoeExpertActivation activation;
  Routing routing;
  int64_t x_pad, y_pad;
  const char* kernel;  // the bf16 kernel the shape selects: "sm90" or "mma"
};

std::string Describe(const ExpertsCase& c) {
  return absl::StrCat("T ", c.tokens, " H ", c.hidden, " E ", c.experts, " k ", c.top_k, " I ", c.intermediate,
                      c.activation == MoeExpertActivation::kRelu2 ? " relu2" : " swiglu", " routing ",
                      static_cast<int>(c.routing), " pads ", c.x_pad, ",", c.y_pad, " bf16 kernel ", c.kernel);
}

const ExpertsCase kExpertsCases[] = {
    {1, 64, 8, 2, 48, MoeExpertActivation::kRelu2, Routing::kRandom, 0, 0, "mma"},
    {1, 256, 128, 6, 192, MoeExpertActivation::kRelu2, Routing::kRandom, 0, 0, "mma"},  // decode, nano-like
    {7, 13, 5, 3, 23, MoeExpertActivation::kSwiGluFused, Routing::kRandom, 3, 2, "mma"},  // unaligned rows
    {7, 72, 6, 6, 40, MoeExpertActivation::kRelu2, Routing::kRandom, 8, 4, "mma"},  // top_k = E
    {64, 128, 64, 6, 96, MoeExpertActivation::kRelu2, Routing::kEvenOnly, 0, 0, "mma"},
    {300, 136, 64, 4, 200, MoeExpertActivation::kSwiGluFused, Routing::kOneGetsAll, 8, 0, "mma"},
    {300, 128, 4, 2, 64, MoeExpertActivation::kSwiGluFused, Routing::kRandom, 0, 0, "sm90"},
    {300, 200, 6, 6, 72, MoeExpertActivation::kRelu2, Routing::kRandom, 8, 3, "sm90"},  // top_k = E
    {1024, 64, 8, 2, 256, MoeExpertActivation::kRelu2, Routing::kOneGetsAll, 0, 0, "sm90"},
    {4096, 136, 8, 2, 200, MoeExpertActivation::kRelu2, Routing::kEvenOnly, 0, 4, "sm90"},
    {4096, 96, 16, 2, 136, MoeExpertActivation::kSwiGluFused, Routing::kRandom, 0, 0, "sm90"},
    {4096, 64, 128, 1, 64, MoeExpertActivation::kRelu2, Routing::kRandom, 0, 0, "mma"},
    {512, 64, 16, 2, 64, MoeExpertActivation::kRelu2, Routing::kRandom, 0, 0, "sm90"},  // ~64 rows per expert
    {1024, 136, 8, 3, 200, MoeExpertActivation::kSwiGluFused, Routing::kRepeats, 8, 0, "sm90"},
    {1024, 72, 8, 4, 80, MoeExpertActivation::kRelu2, Routing::kRepeats, 0, 1, "sm90"},
    {1024, 64, 8, 2, 256, MoeExpertActivation::kRelu2, Routing::kRandom, 3, 0, "mma"},  // x stride % 8 != 0
    {64, 40, 4, 3, 24, MoeExpertActivation::kRelu2, Routing::kRepeats, 0, 0, "mma"},
};

// k ids per token following `routing` (distinct, except kRepeats).
std::vector<int32_t> RandomIds(std::mt19937& rng, const ExpertsCase& c) {
  std::vector<int32_t> ids(c.tokens * c.top_k);
  std::vector<int32_t> pool(c.experts);
  std::iota(pool.begin(), pool.end(), 0);
  if (c.routing == Routing::kEvenOnly) {
    pool.clear();
    for (int32_t e = 0; e < c.experts; e += 2) pool.push_back(e);
  }
  const int32_t every = static_cast<int32_t>(c.experts / 2);
  if (c.routing == Routing::kRepeats) {
    std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(c.experts - 1));
    for (int32_t& id : ids) id = any(rng);
    return ids;
  }
  for (int64_t t = 0; t < c.tokens; ++t) {
    std::shuffle(pool.begin(), pool.end(), rng);
    for (int64_t j = 0; j < c.top_k; ++j) ids[t * c.top_k + j] = pool[j];
    if (c.routing == Routing::kOneGetsAll) {
      auto at = std::find(ids.begin() + t * c.top_k, ids.begin() + (t + 1) * c.top_k, every);
      if (at == ids.begin() + (t + 1) * c.top_k) ids[t * c.top_k + rng() % c.top_k] = every;
    }
  }
  return ids;
}

struct ExpertsInputs {
  int64_t x_stride, y_stride, up_rows;
  std::vector<float> x, up, down, w, y;  // y: the values accumulated into, padding kPadding
  std::vector<int32_t> ids;
};

ExpertsInputs RandomInputs(std::mt19937& rng, const ExpertsCase& c) {
  ExpertsInputs in;
  in.x_stride = c.hidden + c.x_pad;
  in.y_stride = c.hidden + c.y_pad;
  in.up_rows = c.activation == MoeExpertActivation::kSwiGluFused ? 2 * c.intermediate : c.intermediate;
  in.x = RandomRows(rng, c.tokens, c.hidden, in.x_stride);  // NaN padding
  // Weights scaled so that h and the outputs stay O(1) whatever H and I.
  const float up_scale = 2.0f / std::sqrt(static_cast<float>(c.hidden));
  const float down_scale = 2.0f / std::sqrt(static_cast<float>(c.intermediate));
  in.up = RandomFloats(rng, c.experts * in.up_rows * c.hidden, -up_scale, up_scale);
  in.down = RandomFloats(rng, c.experts * c.hidden * c.intermediate, -down_scale, down_scale);
  in.w = RandomFloats(rng, c.tokens * c.top_k, 0.1f, 2.5f);
  in.ids = RandomIds(rng, c);
  in.y.assign(c.tokens * in.y_stride, kPadding);
  const std::vector<float> y0 = RandomFloats(rng, c.tokens * c.hidden);
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t h = 0; h < c.hidden; ++h) in.y[t * in.y_stride + h] = y0[t * c.hidden + h];
  }
  return in;
}

MoeExpertsParams ExpertsParams(const ExpertsCase& c, const ExpertsInputs& in, ElementType type) {
  MoeExpertsParams p;
  p.tokens = c.tokens;
  p.hidden = c.hidden;
  p.experts = c.experts;
  p.top_k = c.top_k;
  p.intermediate = c.intermediate;
  p.activation = c.activation;
  p.type = type;
  p.x_stride = in.x_stride;
  p.y_stride = in.y_stride;
  return p;
}

// The (T, H) part of a strided y, checking that the padding kept kPadding.
std::vector<float> YValues(const std::vector<float>& y, const ExpertsCase& c, int64_t y_stride) {
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t h = c.hidden; h < y_stride; ++h) {
      EXPECT_EQ(y[t * y_stride + h], kPadding) << "padding of row " << t << " overwritten";
    }
  }
  return PackedRows(y, c.tokens, c.hidden, y_stride);
}

// Device copies of one case's inputs (x, up, down as `type`) and a NaN-poisoned workspace.
struct DeviceExperts {
  DeviceExperts(const ExpertsInputs& in, const MoeExpertsParams& p, bool bf16)
      : x32(bf16 ? std::vector<float>() : in.x),
        up32(bf16 ? std::vector<float>() : in.up),
        down32(bf16 ? std::vector<float>() : in.down),
        x16(bf16 ? gpu_test::ToBf16(in.x) : std::vector<uint16_t>()),
        up16(bf16 ? gpu_test::ToBf16(in.up) : std::vector<uint16_t>()),
        down16(bf16 ? gpu_test::ToBf16(in.down) : std::vector<uint16_t>()),
        w(in.w),
        ids(in.ids),
        y(in.y),
        workspace(std::vector<unsigned char>(MoeExpertsWorkspaceBytes(p), 0xFF)) {}
  MoeExpertsParams Bind(MoeExpertsParams p, bool bf16) const {
    p.x = bf16 ? static_cast<const void*>(x16.get()) : x32.get();
    p.up = bf16 ? static_cast<const void*>(up16.get()) : up32.get();
    p.down = bf16 ? static_cast<const void*>(down16.get()) : down32.get();
    p.expert_ids = ids.get();
    p.expert_weights = w.get();
    p.y = y.get();
    p.workspace = workspace.get();
    return p;
  }
  DeviceArray<float> x32, up32, down32;
  DeviceArray<uint16_t> x16, up16, down16;
  DeviceArray<float> w;
  DeviceArray<int32_t> ids;
  DeviceArray<float> y;
  DeviceArray<unsigned char> workspace;
};

TEST_F(MoeGpuTest, ExpertsF32MatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  for (const ExpertsCase& c : kExpertsCases) {
    SCOPED_TRACE(Describe(c));
    const ExpertsInputs in = RandomInputs(rng, c);
    MoeExpertsParams p = ExpertsParams(c, in, ElementType::kF32);
    std::vector<float> want = in.y;
    MoeExpertsParams cpu = p;
    cpu.x = in.x.data();
    cpu.up = in.up.data();
    cpu.down = in.down.data();
    cpu.expert_ids = in.ids.data();
    cpu.expert_weights = in.w.data();
    cpu.y = want.data();
    ASSERT_TRUE(cpu::MoeExperts(cpu).ok());
    DeviceExperts d(in, p, false);
    const absl::Status status = cuda::MoeExperts(d.Bind(p, false), nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const std::vector<float> got = YValues(d.y.Download(), c, in.y_stride);
    // Compare what the experts added (y - y0), not y itself, so that y0 cannot hide an error.
    std::vector<float> got_added(got.size()), want_added(got.size());
    const std::vector<float> y0 = PackedRows(in.y, c.tokens, c.hidden, in.y_stride);
    const std::vector<float> want_values = PackedRows(want, c.tokens, c.hidden, in.y_stride);
    for (size_t i = 0; i < got.size(); ++i) {
      got_added[i] = got[i] - y0[i];
      want_added[i] = want_values[i] - y0[i];
    }
    EXPECT_TRUE(CloseInRelativeL2(got, want_values, kExpertsTolerance));
    EXPECT_TRUE(CloseInRelativeL2(got_added, want_added, kExpertsTolerance));
  }
}

// float64 on the unrounded inputs (`exact`) and the plain bf16 implementation
// (`plain`), both into y0 = the case's y.
void Bf16References(const ExpertsCase& c, const ExpertsInputs& in, std::vector<double>* exact,
                    std::vector<float>* plain) {
  const bool swiglu = c.activation == MoeExpertActivation::kSwiGluFused;
  const int64_t H = c.hidden, I = c.intermediate, k = c.top_k;
  const std::vector<float> xr = gpu_test::RoundedBf16(in.x), upr = gpu_test::RoundedBf16(in.up),
                           downr = gpu_test::RoundedBf16(in.down);
  auto act = [&](double gate, double up) {
    if (swiglu) return gate / (1.0 + std::exp(-gate)) * up;
    return gate > 0.0 ? gate * gate : 0.0;
  };
  exact->assign(c.tokens * H, 0.0);
  plain->assign(c.tokens * H, 0.0f);
  std::vector<double> h(in.up_rows), hr(in.up_rows), a(I), ar(I);
  for (int64_t t = 0; t < c.tokens; ++t) {
    std::vector<double> y_exact(H), y_plain(H);
    for (int64_t o = 0; o < H; ++o) y_exact[o] = y_plain[o] = in.y[t * in.y_stride + o];
    std::vector<std::pair<int32_t, int64_t>> order;  // (expert, slot), ascending
    for (int64_t j = 0; j < k; ++j) order.emplace_back(in.ids[t * k + j], j);
    std::sort(order.begin(), order.end());
    for (const auto& [e, j] : order) {
      const float* x = &in.x[t * in.x_stride];
      const float* x_r = &xr[t * in.x_stride];
      for (int64_t r = 0; r < in.up_rows; ++r) {
        const float* u = &in.up[(e * in.up_rows + r) * H];
        const float* u_r = &upr[(e * in.up_rows + r) * H];
        double s = 0.0, sr = 0.0;
        for (int64_t i = 0; i < H; ++i) {
          s += double{x[i]} * u[i];
          sr += double{x_r[i]} * u_r[i];
        }
        h[r] = s;
        hr[r] = gpu_test::RoundBf16(static_cast<float>(sr));
      }
      for (int64_t i = 0; i < I; ++i) {
        a[i] = swiglu ? act(h[i], h[I + i]) : act(h[i], 0.0);
        ar[i] = gpu_test::RoundBf16(static_cast<float>(swiglu ? act(hr[i], hr[I + i]) : act(hr[i], 0.0)));
      }
      const double weight = in.w[t * k + j];
      for (int64_t o = 0; o < H; ++o) {
        const float* d = &in.down[(e * H + o) * I];
        const float* d_r = &downr[(e * H + o) * I];
        double s = 0.0, sr = 0.0;
        for (int64_t i = 0; i < I; ++i) {
          s += double{d[i]} * a[i];
          sr += double{d_r[i]} * ar[i];
        }
        y_exact[o] += weight * s;
        y_plain[o] = static_cast<float>(y_plain[o] + weight * gpu_test::RoundBf16(static_cast<float>(sr)));
      }
    }
    for (int64_t o = 0; o < H; ++o) {
      (*exact)[t * H + o] = y_exact[o];
      (*plain)[t * H + o] = static_cast<float>(y_plain[o]);
    }
  }
}

TEST_F(MoeGpuTest, ExpertsBf16WithinTwiceTheErrorOfPlainBf16) {
  std::mt19937 rng(std::random_device{}());
  for (const ExpertsCase& c : kExpertsCases) {
    SCOPED_TRACE(Describe(c));
    const ExpertsInputs in = RandomInputs(rng, c);
    MoeExpertsParams p = ExpertsParams(c, in, ElementType::kBF16);
    std::vector<double> exact;
    std::vector<float> plain;
    Bf16References(c, in, &exact, &plain);
    // Errors of what the experts added: y0 is exact in every version.
    const std::vector<float> y0 = PackedRows(in.y, c.tokens, c.hidden, in.y_stride);
    std::vector<double> exact_added(exact.size());
    std::vector<float> plain_added(exact.size());
    for (size_t i = 0; i < exact.size(); ++i) {
      exact_added[i] = exact[i] - y0[i];
      plain_added[i] = static_cast<float>(double{plain[i]} - y0[i]);
    }
    DeviceExperts d(in, p, true);
    const MoeExpertsParams bound = d.Bind(p, true);
    const absl::Status status = cuda::MoeExperts(bound, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    const std::vector<float> got = YValues(d.y.Download(), c, in.y_stride);
    std::vector<float> got_added(got.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(std::isfinite(got[i])) << "y[" << i << "] is " << got[i];
      got_added[i] = static_cast<float>(double{got[i]} - y0[i]);
    }
    const double err = gpu_test::RelativeL2(got_added, exact_added);
    const double plain_err = gpu_test::RelativeL2(plain_added, exact_added);
    std::printf("MoeExperts bf16 [%s]: %s: relative L2 %.3g, plain bf16 %.3g\n", c.kernel, Describe(c).c_str(), err,
                plain_err);
    RecordProperty(absl::StrCat("bf16_error_T", c.tokens, "_E", c.experts, "_", c.kernel), std::to_string(err));
    EXPECT_GT(plain_err, 0.0);
    EXPECT_LE(err, 2.0 * plain_err);

    // The same inputs again give the same bits (no atomics on y, a stable sort).
    DeviceArray<float> y_again(in.y);
    MoeExpertsParams again = bound;
    again.y = y_again.get();
    ASSERT_TRUE(cuda::MoeExperts(again, nullptr).ok());
    const std::vector<float> second = y_again.Download();
    const std::vector<float> first = d.y.Download();
    EXPECT_EQ(std::memcmp(first.data(), second.data(), sizeof(float) * first.size()), 0) << "not deterministic";
  }
}

TEST_F(MoeGpuTest, ExpertsRefuseBadParams) {
  DeviceArray<float> d_buf(std::vector<float>(256, 0.0f));
  DeviceArray<int32_t> d_ids(std::vector<int32_t>(8, 0));
  MoeExpertsParams p;
  p.tokens = 2;
  p.hidden = 4;
  p.experts = 3;
  p.top_k = 1;
  p.intermediate = 2;
  p.x = d_buf.get();
  p.expert_ids = d_ids.get();
  p.expert_weights = d_buf.get();
  p.up = d_buf.get();
  p.down = d_buf.get();
  p.y = d_buf.get() + 128;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MoeExperts(p, nullptr), "MoeExperts: workspace"));
  p.workspace = reinterpret_cast<unsigned char*>(d_buf.get()) + 4;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MoeExperts(p, nullptr), "256-byte"));
  p.workspace = d_buf.get();
  p.experts = 2048;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MoeExperts(p, nullptr), "experts"));
  p.experts = 3;
  p.top_k = 4;
  EXPECT_TRUE(IsInvalidArgumentMentioning(cuda::MoeExperts(p, nullptr), "top_k"));
  p.top_k = 1;
  p.tokens = 0;
  p.workspace = nullptr;
  EXPECT_TRUE(cuda::MoeExperts(p, nullptr).ok());
}

}  // namespace
}  // namespace tessera
