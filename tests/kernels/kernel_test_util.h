// Shared by the kernel tests: seeded random inputs, NaN poisoning, bf16
// rounding on the host, and the relative-L2 comparison in which every op
// states its tolerance. A comparison fails on a non-finite output (poisoned
// outputs prove every element was written) and on an all-zero reference
// (never compare on zeros).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace tessera::kernel_test {

inline std::vector<float> RandomFloats(std::mt19937& rng, int64_t n, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& e : v) e = dist(rng);
  return v;
}

inline std::vector<float> NaNs(int64_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// (rows, width) random values inside rows of `stride` floats whose padding
// columns hold NaN, so a kernel that reads past `width` poisons its output.
inline std::vector<float> RandomRows(std::mt19937& rng, int64_t rows, int64_t width,
                                     int64_t stride, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v = NaNs(rows * stride);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < width; ++c) v[r * stride + c] = dist(rng);
  }
  return v;
}

// The (rows, width) values of rows laid out `stride` apart, packed (drops
// the padding columns, e.g. before comparing a strided output).
template <typename T>
std::vector<T> PackedRows(const std::vector<T>& v, int64_t rows, int64_t width, int64_t stride) {
  std::vector<T> packed(rows * width);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < width; ++c) packed[r * width + c] = v[r * stride + c];
  }
  return packed;
}

// fp32 → bf16 bits, round to nearest even (finite inputs).
inline uint16_t ToBf16Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float FromBf16Bits(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
inline float RoundBf16(float f) { return FromBf16Bits(ToBf16Bits(f)); }
// Elementwise ToBf16Bits / FromBf16Bits / RoundBf16. NaN (padding) stays NaN.
inline std::vector<uint16_t> ToBf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = std::isnan(v[i]) ? uint16_t{0x7FC0} : ToBf16Bits(v[i]);
  return out;
}
inline std::vector<float> FromBf16(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = FromBf16Bits(v[i]);
  return out;
}
inline std::vector<float> RoundedBf16(const std::vector<float>& v) { return FromBf16(ToBf16(v)); }

// ||got - want||₂ / ||want||₂, failing on non-finite got and on zero want.
template <typename Want>
::testing::AssertionResult CloseInRelativeL2(const std::vector<float>& got,
                                             const std::vector<Want>& want, double tolerance) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << "size mismatch: got " << got.size() << ", want " << want.size();
  }
  double err2 = 0.0, ref2 = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      return ::testing::AssertionFailure() << "element " << i << " is " << got[i]
                                           << " (not written, or overflowed)";
    }
    const double diff = static_cast<double>(got[i]) - static_cast<double>(want[i]);
    err2 += diff * diff;
    ref2 += static_cast<double>(want[i]) * static_cast<double>(want[i]);
  }
  if (!(ref2 > 0.0)) return ::testing::AssertionFailure() << "reference is all zeros";
  const double rel = std::sqrt(err2 / ref2);
  if (rel <= tolerance) return ::testing::AssertionSuccess() << "relative L2 " << rel;
  return ::testing::AssertionFailure()
         << "relative L2 error " << rel << " exceeds tolerance " << tolerance;
}

// Bit-for-bit equality (NaN padding, -inf and signed zeros included): for a
// result that must not change, such as a batched call against one-request calls.
inline bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

// The status is INVALID_ARGUMENT and its message mentions `needle`.
inline ::testing::AssertionResult IsInvalidArgumentMentioning(const absl::Status& status,
                                                              const std::string& needle) {
  if (status.code() != absl::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "expected INVALID_ARGUMENT, got " << status;
  }
  if (status.message().find(needle) == absl::string_view::npos) {
    return ::testing::AssertionFailure() << "message \"" << status.message()
                                         << "\" does not mention \"" << needle << "\"";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace tessera::kernel_test
