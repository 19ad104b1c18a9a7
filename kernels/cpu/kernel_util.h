// Helpers shared by the CPU reference kernels: the scalar functions that
// several ops apply (SiLU, softplus), and StrideOr for resolving strides. The
// parameter checks themselves are shared with every backend: kernels/params_check.h.
#pragma once

#include <cmath>

#include "kernels/params_check_util.h"

namespace tessera::cpu {

using params_check::StrideOr;

inline float Silu(float x) { return x / (1.0f + std::exp(-x)); }

// torch.nn.functional.softplus with its default threshold of 20.
inline float Softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }

}  // namespace tessera::cpu
