// Chunked SSD (Mamba-2 scan) laid out as the GPU kernel is: per chunk of Q
// tokens, the intra-chunk output (L ∘ C Bᵀ) X, the contribution of the state
// entering the chunk and the state handed to the next chunk are each one GEMM.
// Decays are exp(cum_t - cum_s) of chunk-local cumsums, never ratios of exps.
// fp32 x, B, C only: bf16 operands are the CUDA backend's (UNIMPLEMENTED here).
#include "kernels/ssd_scan.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

// Sizes with every stride resolved ("0 means packed" applied).
struct ScanLayout {
  int64_t seq_len, heads, head_dim, groups, state_size;
  int64_t heads_per_group;
  int64_t x_stride, dt_stride, b_stride, c_stride;
  int64_t y_stride() const { return heads * head_dim; }
};

// Tokens [begin, begin + len) of the sequence.
struct TokenSpan {
  int64_t begin, len;
};

ScanLayout ResolveLayout(const SsdScanParams& p) {
  const int64_t group_width = p.num_groups * p.state_size;
  return ScanLayout{p.seq_len,
                    p.num_heads,
                    p.head_dim,
                    p.num_groups,
                    p.state_size,
                    p.num_heads / p.num_groups,
                    StrideOr(p.x_stride, p.num_heads * p.head_dim),
                    StrideOr(p.dt_stride, p.num_heads),
                    StrideOr(p.b_stride, group_width),
                    StrideOr(p.c_stride, group_width)};
}

// Row-major GEMM with int dimensions (validated to fit) and 64-bit call sites.
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

// Per-chunk working memory, sized for a full chunk and reused.
struct ChunkScratch {
  ChunkScratch(int64_t chunk_size, int64_t state_size)
      : cb(chunk_size * chunk_size),
        mix(chunk_size * chunk_size),
        cum(chunk_size),
        scaled(chunk_size * state_size) {}
  std::vector<float> cb;      // (q, q) C·Bᵀ of one group
  std::vector<float> mix;     // (q, q) M[t,s] = CBᵀ[t,s]·exp(cum_t - cum_s)·dt_s, s <= t
  std::vector<float> cum;     // (q) inclusive cumsum of dt·A of one head
  std::vector<float> scaled;  // (q, N) rows of C or B scaled per token
};

class ChunkedScan {
 public:
  ChunkedScan(const SsdScanParams& p, const ScanLayout& s, float* state)
      : p_(p), s_(s), state_(state), scratch_(std::min(p.chunk_size, s.seq_len), s.state_size) {}

  // Advances the state over `span` and writes y for its tokens. `state_is_zero`
  // skips the entering-state product when it would only add zeros.
  void Run(TokenSpan span, bool state_is_zero, float* log_decay) {
    for (int64_t g = 0; g < s_.groups; ++g) {
      ComputeCB(span, g);
      for (int64_t h = g * s_.heads_per_group; h < (g + 1) * s_.heads_per_group; ++h) {
        ComputeCumsum(span, h);
        IntraChunkOutput(span, h);
        if (!state_is_zero) AddEnteringState(span, g, h);
        AdvanceState(span, g, h);
        AddSkip(span, h);
        log_decay[h] += scratch_.cum[span.len - 1];
      }
    }
  }

 private:
  const float* X(int64_t t, int64_t h) const { return x_ + t * s_.x_stride + h * s_.head_dim; }
  const float* B(int64_t t, int64_t g) const { return b_ + t * s_.b_stride + g * s_.state_size; }
  const float* C(int64_t t, int64_t g) const { return c_ + t * s_.c_stride + g * s_.state_size; }
  float Dt(int64_t t, int64_t h) const { return p_.dt[t * s_.dt_stride + h]; }
  float* Y(int64_t t, int64_t h) const { return p_.y + t * s_.y_stride() + h * s_.head_dim; }
  float* State(int64_t h) const { return state_ + h * s_.head_dim * s_.state_size; }  // (P, N)

  // cb = C_chunk · B_chunkᵀ for group g: (q, q).
  void ComputeCB(TokenSpan span, int64_t g) {
    Gemm(false, true, span.len, span.len, s_.state_size, C(span.begin, g), s_.c_stride,
         B(span.begin, g), s_.b_stride, 0.0f, scratch_.cb.data(), span.len);
  }

  void ComputeCumsum(TokenSpan span, int64_t h) {
    float running = 0.0f;
    for (int64_t t = 0; t < span.len; ++t) {
      running += Dt(span.begin + t, h) * p_.A[h];
      scratch_.cum[t] = running;
    }
  }

  // y_chunk = M · X_chunk with M the causal, decayed CBᵀ: (q, q) · (q, P).
  void IntraChunkOutput(TokenSpan span, int64_t h) {
    const int64_t q = span.len;
    const std::vector<float>& cum = scratch_.cum;
    for (int64_t t = 0; t < q; ++t) {
      float* mix_row = scratch_.mix.data() + t * q;  // (q)
      const float* cb_row = scratch_.cb.data() + t * q;
      for (int64_t s = 0; s <= t; ++s) {
        mix_row[s] = cb_row[s] * std::exp(cum[t] - cum[s]) * Dt(span.begin + s, h);
      }
      std::fill(mix_row + t + 1, mix_row + q, 0.0f);
    }
    Gemm(false, false, q, s_.head_dim, q, scratch_.mix.data(), q, X(span.begin, h), s_.x_stride,
         0.0f, Y(span.begin, h), s_.y_stride());
  }

  // y_t += exp(cum_t) · (h · C_t): (q, N) scaled C times stateᵀ (N, P).
  void AddEnteringState(TokenSpan span, int64_t g, int64_t h) {
    const int64_t n = s_.state_size;
    for (int64_t t = 0; t < span.len; ++t) {
      const float decay = std::exp(scratch_.cum[t]);
      const float* c = C(span.begin + t, g);
      for (int64_t i = 0; i < n; ++i) scratch_.scaled[t * n + i] = decay * c[i];
    }
    Gemm(false, true, span.len, s_.head_dim, n, scratch_.scaled.data(), n, State(h), n, 1.0f,
         Y(span.begin, h), s_.y_stride());
  }

  // h = exp(cum_last) · h + Σ_s exp(cum_last - cum_s) · dt_s · x_s ⊗ B_s, the
  // sum as X_chunkᵀ (P, q) times the scaled B rows (q, N).
  void AdvanceState(TokenSpan span, int64_t g, int64_t h) {
    const int64_t n = s_.state_size;
    const float cum_last = scratch_.cum[span.len - 1];
    for (int64_t t = 0; t < span.len; ++t) {
      const float weight = std::exp(cum_last - scratch_.cum[t]) * Dt(span.begin + t, h);
      const float* b = B(span.begin + t, g);
      for (int64_t i = 0; i < n; ++i) scratch_.scaled[t * n + i] = weight * b[i];
    }
    float* state = State(h);
    const float chunk_decay = std::exp(cum_last);
    for (int64_t i = 0; i < s_.head_dim * n; ++i) state[i] *= chunk_decay;
    Gemm(true, false, s_.head_dim, n, span.len, X(span.begin, h), s_.x_stride,
         scratch_.scaled.data(), n, 1.0f, state, n);
  }

  void AddSkip(TokenSpan span, int64_t h) {
    if (p_.D == nullptr) return;
    for (int64_t t = span.begin; t < span.begin + span.len; ++t) {
      const float* x = X(t, h);
      float* y = Y(t, h);
      for (int64_t i = 0; i < s_.head_dim; ++i) y[i] += p_.D[h] * x[i];
    }
  }

  const SsdScanParams& p_;
  const ScanLayout& s_;
  const float* x_ = static_cast<const float*>(p_.x);  // fp32 operands (RequireF32Operands)
  const float* b_ = static_cast<const float*>(p_.B);
  const float* c_ = static_cast<const float*>(p_.C);
  float* state_;  // (H, P, N) running state
  ChunkScratch scratch_;
};

// Tokens per GEMM when adding the initial state's contribution.
constexpr int64_t kInitialStateBlock = 64;

}  // namespace

absl::Status SsdScan(const SsdScanParams& p) {
  RETURN_IF_ERROR(CheckSsdScanParams(p));
  RETURN_IF_ERROR(RequireF32Operands("SsdScan", p.type));
  const ScanLayout layout = ResolveLayout(p);
  const int64_t state_elems = layout.heads * layout.head_dim * layout.state_size;
  // Copied before anything is written: final_state may alias initial_state.
  std::vector<float> state(state_elems, 0.0f);  // (H, P, N)
  if (p.initial_state != nullptr) {
    std::copy(p.initial_state, p.initial_state + state_elems, state.begin());
  }
  std::vector<float> log_decay(layout.heads, 0.0f);  // (H)
  if (layout.seq_len > 0) {
    ChunkedScan scan(p, layout, state.data());
    for (int64_t begin = 0; begin < layout.seq_len; begin += p.chunk_size) {
      const TokenSpan chunk{begin, std::min(p.chunk_size, layout.seq_len - begin)};
      scan.Run(chunk, /*state_is_zero=*/begin == 0 && p.initial_state == nullptr,
               log_decay.data());
    }
  }
  if (p.final_state != nullptr) std::copy(state.begin(), state.end(), p.final_state);
  if (p.log_decay != nullptr) std::copy(log_decay.begin(), log_decay.end(), p.log_decay);
  return absl::OkStatus();
}

absl::Status SsdAddInitialState(const SsdAddInitialStateParams& p) {
  RETURN_IF_ERROR(CheckSsdAddInitialStateParams(p));
  const int64_t n = p.state_size;
  const int64_t dt_stride = StrideOr(p.dt_stride, p.num_heads);
  const int64_t c_stride = StrideOr(p.c_stride, p.num_groups * n);
  const int64_t y_stride = p.num_heads * p.head_dim;
  const int64_t state_elems = p.head_dim * n;  // per head
  std::vector<float> scaled_c(std::min(kInitialStateBlock, p.seq_len) * n);  // (block, N)
  for (int64_t h = 0; h < p.num_heads; ++h) {
    const int64_t g = h / (p.num_heads / p.num_groups);
    const float* h_in = p.initial_state + h * state_elems;  // (P, N)
    float cum = 0.0f;  // Σ_{τ<=t} dt_τ·A_h over the whole sequence
    for (int64_t begin = 0; begin < p.seq_len; begin += kInitialStateBlock) {
      const int64_t len = std::min(kInitialStateBlock, p.seq_len - begin);
      for (int64_t t = 0; t < len; ++t) {
        cum += p.dt[(begin + t) * dt_stride + h] * p.A[h];
        const float decay = std::exp(cum);
        const float* c = p.C + (begin + t) * c_stride + g * n;  // (N)
        for (int64_t i = 0; i < n; ++i) scaled_c[t * n + i] = decay * c[i];
      }
      // y[block, h] += scaled_c (len, N) · h_inᵀ (N, P)
      Gemm(false, true, len, p.head_dim, n, scaled_c.data(), n, h_in, n, 1.0f,
           p.y + begin * y_stride + h * p.head_dim, y_stride);
    }
    if (p.final_state != nullptr) {
      const float total_decay = std::exp(cum);
      float* final_h = p.final_state + h * state_elems;  // (P, N)
      for (int64_t i = 0; i < state_elems; ++i) final_h[i] += total_decay * h_in[i];
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
