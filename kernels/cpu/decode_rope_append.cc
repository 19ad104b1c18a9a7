// The reference: request by request, cpu::Rope at the request's position on
// its q and k rows, then a copy of its k and v rows into its caches.
#include "kernels/decode_rope_append.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"
#include "kernels/rope.h"

namespace tessera::cpu {

absl::Status DecodeRopeAppend(const DecodeRopeAppendParams& p) {
  RETURN_IF_ERROR(CheckDecodeRopeAppendParams(p));
  const int64_t kv_width = p.num_kv_heads * p.head_dim;
  const int64_t q_stride = StrideOr(p.q_stride, p.num_q_heads * p.head_dim);
  const int64_t k_stride = StrideOr(p.k_stride, kv_width);
  const int64_t v_stride = StrideOr(p.v_stride, kv_width);
  const int64_t cache_stride = StrideOr(p.cache_stride, kv_width);
  const int64_t bytes = ElementBytes(p.type);
  for (int64_t r = 0; r < p.batch; ++r) {
    if (p.positions[r] < 0 || p.kv_lens[r] < 1) {
      return absl::InvalidArgumentError(absl::StrCat("DecodeRopeAppend: request ", r, " has position ",
                                                     p.positions[r], " and kv_len ", p.kv_lens[r],
                                                     " (must be >= 0 and >= 1)"));
    }
    auto* q = static_cast<char*>(p.q) + r * q_stride * bytes;
    auto* k = static_cast<char*>(p.k) + r * k_stride * bytes;
    const auto* v = static_cast<const char*>(p.v) + r * v_stride * bytes;
    if (p.rotary_dim > 0) {
      RopeParams rope{1, p.num_q_heads, p.head_dim, p.rotary_dim, p.theta, p.positions[r], q, 0, p.type};
      RETURN_IF_ERROR(Rope(rope));
      rope.num_heads = p.num_kv_heads;
      rope.x = k;
      RETURN_IF_ERROR(Rope(rope));
    }
    const int64_t row = p.kv_lens[r] - 1;
    std::memcpy(static_cast<char*>(p.k_cache[r]) + row * cache_stride * bytes, k, kv_width * bytes);
    std::memcpy(static_cast<char*>(p.v_cache[r]) + row * cache_stride * bytes, v, kv_width * bytes);
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
