// Helpers shared by the CPU reference kernels: one spelling for the parameter
// checks (INVALID_ARGUMENT naming the op, the field and the value) and for the
// scalar functions that several ops apply (SiLU, softplus).
#pragma once

#include <climits>
#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tessera::cpu {

inline absl::Status ParamError(absl::string_view op, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", what));
}

inline absl::Status CheckPositive(absl::string_view op, absl::string_view field, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return ParamError(op, absl::StrCat(field, " must be > 0. Given: ", value));
}

inline absl::Status CheckNonNegative(absl::string_view op, absl::string_view field, int64_t value) {
  if (value >= 0) return absl::OkStatus();
  return ParamError(op, absl::StrCat(field, " must be >= 0. Given: ", value));
}

inline absl::Status CheckNotNull(absl::string_view op, absl::string_view field, const void* ptr) {
  if (ptr != nullptr) return absl::OkStatus();
  return ParamError(op, absl::StrCat(field, " must not be null"));
}

// A row stride is 0 (meaning "packed": row_width) or at least row_width.
inline absl::Status CheckRowStride(absl::string_view op, absl::string_view field, int64_t stride,
                                   int64_t row_width) {
  if (stride == 0 || stride >= row_width) return absl::OkStatus();
  return ParamError(op, absl::StrCat(field, " must be 0 or >= ", row_width, ". Given: ", stride));
}

inline absl::Status CheckDivides(absl::string_view op, absl::string_view divisor_field,
                                 int64_t divisor, absl::string_view dividend_field,
                                 int64_t dividend) {
  if (divisor > 0 && dividend % divisor == 0) return absl::OkStatus();
  return ParamError(op, absl::StrCat(divisor_field, " (", divisor, ") must divide ",
                                     dividend_field, " (", dividend, ")"));
}

// BLAS takes 32-bit dimensions and leading dimensions.
inline absl::Status CheckFitsBlasInt(absl::string_view op, absl::string_view field, int64_t value) {
  if (value <= INT_MAX) return absl::OkStatus();
  return ParamError(op, absl::StrCat(field, " must be <= ", INT_MAX, ". Given: ", value));
}

inline int64_t StrideOr(int64_t stride, int64_t packed) { return stride == 0 ? packed : stride; }

inline float Silu(float x) { return x / (1.0f + std::exp(-x)); }

// torch.nn.functional.softplus with its default threshold of 20.
inline float Softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }

}  // namespace tessera::cpu
