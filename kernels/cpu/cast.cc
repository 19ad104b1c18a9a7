// Row casts between storage types, element by element in row order: fp32 ->
// bf16 rounds to nearest even (FloatToBf16Bits, the rounding of
// __float2bfloat16_rn), bf16 -> fp32 is exact, a same-type cast copies rows.
// The one aliasing allowed (same type and stride) does nothing.
#include "kernels/cast.h"

#include <cstring>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

// One row of `width` elements, in -> out.
void CastRow(ElementType in_type, const void* in, ElementType out_type, void* out, int64_t width) {
  if (in_type == out_type) {
    std::memcpy(out, in, static_cast<size_t>(width * ElementBytes(in_type)));
    return;
  }
  switch (out_type) {
    case ElementType::kF32: {  // from bf16
      const uint16_t* src = static_cast<const uint16_t*>(in);
      float* dst = static_cast<float*>(out);
      for (int64_t c = 0; c < width; ++c) dst[c] = Bf16BitsToFloat(src[c]);
      return;
    }
    case ElementType::kBF16: {  // from fp32
      const float* src = static_cast<const float*>(in);
      uint16_t* dst = static_cast<uint16_t*>(out);
      for (int64_t c = 0; c < width; ++c) dst[c] = FloatToBf16Bits(src[c]);
      return;
    }
  }
}

}  // namespace

absl::Status Cast(const CastParams& p) {
  RETURN_IF_ERROR(CheckCastParams(p));
  if (p.rows == 0 || p.in == p.out) return absl::OkStatus();  // aliasing: same type and stride
  const int64_t in_row_bytes = StrideOr(p.in_stride, p.width) * ElementBytes(p.in_type);
  const int64_t out_row_bytes = StrideOr(p.out_stride, p.width) * ElementBytes(p.out_type);
  for (int64_t r = 0; r < p.rows; ++r) {
    CastRow(p.in_type, static_cast<const uint8_t*>(p.in) + r * in_row_bytes, p.out_type,
            static_cast<uint8_t*>(p.out) + r * out_row_bytes, p.width);
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
