// Helpers shared by the CPU reference kernels: the scalar functions that
// several ops apply (SiLU, softplus), bf16 <-> fp32 conversion (Embedding,
// Cast), the host element types an op dispatches on once (float, Bf16: read
// widened to fp32, written rounded to nearest even, as the GPU does),
// StrideOr for resolving strides, and the refusal of an element type a
// reference does not compute. The parameter
// checks themselves are shared with every backend: kernels/<op>.cc.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kernels/element_type.h"
#include "kernels/params_check_util.h"

namespace tessera::cpu {

using params_check::StrideOr;

inline float Silu(float x) { return x / (1.0f + std::exp(-x)); }

// torch.nn.functional.softplus with its default threshold of 20.
inline float Softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }

// bf16 bits widened to fp32: exact (bf16 is the top half of an fp32).
inline float Bf16BitsToFloat(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// fp32 to bf16 bits, rounded to nearest even as __float2bfloat16_rn does:
// finite values past the largest bf16 become ±inf, ±inf stay, NaN stays a
// (quiet) NaN of the same sign.
inline uint16_t FloatToBf16Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// A bf16 element in host memory: its bits, the top half of an fp32.
struct Bf16 {
  uint16_t bits;
};

// A stored element as the fp32 the references compute in (exact for bf16).
inline float Widen(float v) { return v; }
inline float Widen(Bf16 v) { return Bf16BitsToFloat(v.bits); }

// An fp32 result in the storage type T (float, or Bf16 rounded to nearest even).
template <typename T>
T Narrow(float v);
template <>
inline float Narrow<float>(float v) {
  return v;
}
template <>
inline Bf16 Narrow<Bf16>(float v) {
  return Bf16{FloatToBf16Bits(v)};
}

// fn(T{}) with T the host type of `type` (float or Bf16): the one switch of an
// op that reads or writes either storage type. The shared checks have
// rejected values outside the enum before a reference gets here.
template <typename Fn>
decltype(auto) WithHostType(ElementType type, Fn&& fn) {
  switch (type) {
    case ElementType::kF32:
      return fn(float{});
    case ElementType::kBF16:
      return fn(Bf16{});
  }
  return fn(float{});
}

// UNIMPLEMENTED unless `type` is fp32: the references that compute on fp32
// operands only (Linear, Attention) ask this after the shared checks.
inline absl::Status RequireF32Operands(absl::string_view op, ElementType type) {
  if (type == ElementType::kF32) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(
      op, ": the CPU backend computes fp32 operands. Given: ", ElementTypeName(type)));
}

}  // namespace tessera::cpu
