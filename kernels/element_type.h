// The storage type of an op's operands, carried inside its params struct
// (LinearParams::type and y_type, AttentionParams::type, CastParams::in_type
// and out_type, RmsNormParams::out_type, CausalConv1dParams::x_type and
// out_type, ...), so each op has one entry point per backend and dispatches
// on the type once, inside. Compute and accumulation stay fp32
// whatever the storage type; a backend that lacks a type returns UNIMPLEMENTED,
// and a value outside the enum (a cast from an int) is INVALID_ARGUMENT.
#pragma once

#include <cstdint>

namespace tessera {

enum class ElementType { kF32, kBF16 };

// Bytes of one element: 4 or 2; 0 for a value outside the enum.
constexpr int64_t ElementBytes(ElementType type) {
  switch (type) {
    case ElementType::kF32:
      return 4;
    case ElementType::kBF16:
      return 2;
  }
  return 0;
}

// "f32" or "bf16"; "unknown" for a value outside the enum.
constexpr const char* ElementTypeName(ElementType type) {
  switch (type) {
    case ElementType::kF32:
      return "f32";
    case ElementType::kBF16:
      return "bf16";
  }
  return "unknown";
}

}  // namespace tessera
