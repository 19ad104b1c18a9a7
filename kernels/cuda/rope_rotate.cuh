// The rotation of one channel pair (i, i + half) of one head, shared by Rope
// and DecodeRopeAppend so that a token rotated by either is rotated to the
// same bits: phase position · inv_freq in fp32 (as transformers forms it),
// rotated in fp32 and rounded once to the storage type.
#pragma once

#include "kernels/cuda/cuda_util.cuh"

namespace tessera::cuda_launch {

template <typename T>
__device__ __forceinline__ void RotatePair(T* head, int64_t i, int64_t half, float position, float inv_freq) {
  const float phi = __fmul_rn(position, inv_freq);
  const float cos_phi = cosf(phi);
  const float sin_phi = sinf(phi);
  const float first = ToFloat(head[i]);
  const float second = ToFloat(head[i + half]);
  head[i] = FromFloat<T>(first * cos_phi - second * sin_phi);
  head[i + half] = FromFloat<T>(second * cos_phi + first * sin_phi);
}

}  // namespace tessera::cuda_launch
