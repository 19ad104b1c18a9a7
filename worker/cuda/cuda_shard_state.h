// One request's memory on one GPU: per attention layer a K/V cache in the
// engine's element type that grows as tokens are appended, per Mamba layer
// the conv window and SSM state in fp32 (states accumulate over the whole
// sequence, so they are never rounded to bf16).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "worker/cuda/device_buffer.h"
#include "worker/cuda/device_weights.h"
#include "worker/engine.h"

namespace tessera::cuda_engine {

struct DeviceKv {
  DeviceBuffer k, v;           // (capacity, Hkv, D) each, element type of the engine
  int64_t tokens = 0;          // rows in use
  int64_t capacity = 0;        // rows allocated
};

struct DeviceMambaState {
  DeviceBuffer conv;  // (K-1, conv_channels) fp32, oldest row first
  DeviceBuffer ssm;   // (H, P, N) fp32
};

class CudaShardState final : public ShardState {
 public:
  CudaShardState(int64_t begin, int64_t capacity_hint, int64_t kv_row_bytes)
      : num_tokens_(begin), kv_begin_(begin), capacity_hint_(capacity_hint), kv_row_bytes_(kv_row_bytes) {}

  int64_t num_tokens() const override { return num_tokens_; }
  int64_t MemoryBytes() const override;
  void DropMambaStates() override { mamba.clear(); }

  // Makes room for `more` rows in every K/V cache (copying on growth, on
  // `stream`, which it synchronizes only when it had to grow).
  absl::Status ReserveKv(int64_t more, cudaStream_t stream);

  int64_t num_tokens_;
  int64_t kv_begin_;       // global position of the first K/V row held here
  int64_t capacity_hint_;  // tokens the request is expected to reach here
  int64_t kv_row_bytes_;   // bytes of one token's K (or V) in one layer
  std::vector<DeviceKv> attention;        // by state slot
  std::vector<DeviceMambaState> mamba;    // by state slot; empty once dropped
};

}  // namespace tessera::cuda_engine
