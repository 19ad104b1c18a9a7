// The spelling of a kernel parameter check, for the checks of kernels/<op>.cc
// and for the few a backend adds of its own: INVALID_ARGUMENT "<op>: <what>",
// naming the field and the value given. Also StrideOr, the one reading of the
// "stride 0 means packed" rule that the checks and the kernels share.
#pragma once

#include <climits>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kernels/element_type.h"

namespace tessera::params_check {

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

// An ElementType outside the enum (a cast from an int) is a bad request.
inline absl::Status CheckElementType(absl::string_view op, absl::string_view field,
                                     ElementType type) {
  switch (type) {
    case ElementType::kF32:
    case ElementType::kBF16:
      return absl::OkStatus();
  }
  return ParamError(op, absl::StrCat(field, " must be kF32 or kBF16. Given: ",
                                     static_cast<int>(type)));
}

inline int64_t StrideOr(int64_t stride, int64_t packed) { return stride == 0 ? packed : stride; }

}  // namespace tessera::params_check
