// Attention, two-pass softmax per (query row, head) in fp32 with the row max
// subtracted, returning the log-sum-exp so that partial results over disjoint
// key blocks merge exactly. Under the causal rule a row sees a prefix of keys.
// fp32 q, k, v only: bf16 operands are the CUDA backend's (UNIMPLEMENTED here).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// How many keys (a prefix of the block) query row i sees.
int64_t VisibleKeys(const AttentionParams& p, int64_t i) {
  if (!p.causal) return p.kv_len;
  const int64_t last_visible = p.q_position0 + i - p.kv_position0;  // key index
  return std::clamp<int64_t>(last_visible + 1, 0, p.kv_len);
}

struct Strides {
  int64_t q, k, v;
};

// One (row, head): out (D) and its log-sum-exp over `visible` keys (>= 1).
float AttendRow(const AttentionParams& p, const Strides& s, int64_t i, int64_t h,
                int64_t visible, std::vector<float>& scores, float* out) {
  const int64_t d = p.head_dim;
  const int64_t kv_head = h / (p.num_q_heads / p.num_kv_heads);
  const float* q = static_cast<const float*>(p.q) + i * s.q + h * d;  // (D)
  float max_score = kNegInf;
  for (int64_t j = 0; j < visible; ++j) {
    const float* k = static_cast<const float*>(p.k) + j * s.k + kv_head * d;  // (D)
    float dot = 0.0f;
    for (int64_t c = 0; c < d; ++c) dot += q[c] * k[c];
    scores[j] = dot * p.scale;
    max_score = std::max(max_score, scores[j]);
  }
  std::fill(out, out + d, 0.0f);
  float sum = 0.0f;
  for (int64_t j = 0; j < visible; ++j) {
    const float weight = std::exp(scores[j] - max_score);
    sum += weight;
    const float* v = static_cast<const float*>(p.v) + j * s.v + kv_head * d;  // (D)
    for (int64_t c = 0; c < d; ++c) out[c] += weight * v[c];
  }
  for (int64_t c = 0; c < d; ++c) out[c] /= sum;
  return max_score + std::log(sum);
}

// Merges one row (D) into the accumulator. lse = -inf means "saw no key"; an
// accumulator in that state is taken to hold out = 0 whatever its memory says.
void MergeRow(int64_t d, const float* part_out, float part_lse, float* out, float& lse) {
  if (part_lse == kNegInf) {
    if (lse == kNegInf) std::fill(out, out + d, 0.0f);
    return;
  }
  if (lse == kNegInf) {
    std::copy(part_out, part_out + d, out);
    lse = part_lse;
    return;
  }
  const float merged = std::max(lse, part_lse) + std::log1p(std::exp(-std::fabs(lse - part_lse)));
  const float w_acc = std::exp(lse - merged);
  const float w_part = std::exp(part_lse - merged);
  for (int64_t c = 0; c < d; ++c) out[c] = w_acc * out[c] + w_part * part_out[c];
  lse = merged;
}

}  // namespace

absl::Status Attention(const AttentionParams& p) {
  RETURN_IF_ERROR(CheckAttentionParams(p));
  RETURN_IF_ERROR(RequireF32Operands("Attention", p.type));
  const Strides strides{StrideOr(p.q_stride, p.num_q_heads * p.head_dim),
                        StrideOr(p.k_stride, p.num_kv_heads * p.head_dim),
                        StrideOr(p.v_stride, p.num_kv_heads * p.head_dim)};
  std::vector<float> scores(p.kv_len);  // (Lk) of one row
  for (int64_t i = 0; i < p.q_len; ++i) {
    const int64_t visible = VisibleKeys(p, i);
    for (int64_t h = 0; h < p.num_q_heads; ++h) {
      float* out = p.out + (i * p.num_q_heads + h) * p.head_dim;  // (D)
      float row_lse = kNegInf;
      if (visible == 0) {
        std::fill(out, out + p.head_dim, 0.0f);
      } else {
        row_lse = AttendRow(p, strides, i, h, visible, scores, out);
      }
      if (p.lse != nullptr) p.lse[i * p.num_q_heads + h] = row_lse;
    }
  }
  return absl::OkStatus();
}

absl::Status AttentionMerge(const AttentionMergeParams& p) {
  RETURN_IF_ERROR(CheckAttentionMergeParams(p));
  for (int64_t r = 0; r < p.rows; ++r) {
    MergeRow(p.head_dim, p.part_out + r * p.head_dim, p.part_lse[r], p.out + r * p.head_dim,
             p.lse[r]);
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
