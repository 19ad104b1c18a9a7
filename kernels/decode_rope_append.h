// The per-request part of a batched decode step's attention, in one launch
// for the whole batch (what a CUDA graph of the step can hold: nothing per
// request is a launch parameter). For each request r, whose new token sits at
// global position positions[r]:
//   - RoPE (kernels/rope.h, the same rotation and the same fp32 phase) at
//     positions[r] on its query row (Hq heads) and its new key row (Hkv
//     heads), in place; rotary_dim 0: no rotation;
//   - its (rotated) key row and its value row appended to its own cache:
//     copied to row kv_lens[r] - 1 of k_cache[r] and v_cache[r] (kv_lens
//     counts the new row, as DecodeAttention's kv_lens does, so one device
//     table serves both ops).
// Positions, lengths and cache pointers are read from memory of the backend,
// so a replay of a captured step serves any positions and any caches.
// q, k, v and the caches share one storage type (fp32, or bf16 rotated in
// fp32 and rounded once, as Rope). The CPU reference runs cpu::Rope per
// request, so both backends rotate exactly as a per-request Rope does.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct DecodeRopeAppendParams {
  int64_t batch = 0;         // requests (may be 0)
  int64_t num_q_heads = 0;   // Hq
  int64_t num_kv_heads = 0;  // Hkv
  int64_t head_dim = 0;      // D
  int64_t rotary_dim = 0;    // even, <= head_dim; 0: no rotation
  float theta = 10000.0f;    // rope_theta, finite, > 0
  ElementType type = ElementType::kF32;  // of q, k, v and the caches
  void* q = nullptr;         // (batch, Hq, D), request stride q_stride; rotated in place
  int64_t q_stride = 0;      // elements; 0 means Hq·D
  void* k = nullptr;         // (batch, Hkv, D) new keys, request stride k_stride; rotated in place
  int64_t k_stride = 0;      // elements; 0 means Hkv·D
  const void* v = nullptr;   // (batch, Hkv, D) new values, request stride v_stride
  int64_t v_stride = 0;      // elements; 0 means Hkv·D
  const int32_t* positions = nullptr;  // (batch) global position of each request's token, >= 0
  const float* inv_freq = nullptr;     // (rotary_dim / 2) RopeInverseFrequencies(theta, rotary_dim); may be
                                       // null on the CPU, which forms its own
  void* const* k_cache = nullptr;      // (batch) pointers: request r's keys (>= kv_lens[r] rows of Hkv·D)
  void* const* v_cache = nullptr;      // (batch) pointers: request r's values, as k_cache
  int64_t cache_stride = 0;            // elements between cache rows; 0 means Hkv·D
  const int32_t* kv_lens = nullptr;    // (batch) rows of each cache after the append, >= 1
};
// On CUDA every pointer (the pointer arrays and what they point to) is device
// memory; the host never reads positions, lengths or pointers.

// The contract's checks (kernels/decode_rope_append.cc), which every backend
// runs first: OK or INVALID_ARGUMENT "DecodeRopeAppend: <what>".
absl::Status CheckDecodeRopeAppendParams(const DecodeRopeAppendParams& p);

namespace cpu {
absl::Status DecodeRopeAppend(const DecodeRopeAppendParams& p);
}  // namespace cpu

namespace cuda {
absl::Status DecodeRopeAppend(const DecodeRopeAppendParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
