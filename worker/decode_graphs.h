// CUDA graphs of batched decode steps (DESIGN.md "Speed on a GPU"): a step of
// n rows launches about a hundred kernels, so on a GPU the launches, not the
// bytes, set its time. Each batch-size bucket (1, 2, 4, ... 64 rows) gets one
// graph of the whole step, captured the first time a step of that bucket runs
// and replayed after: rows past n are padding, every one of them a row of one
// shared padding state (token 0 at position 0, one K/V row, its states
// advanced by garbage that no real row reads), so the graph's shapes are the
// bucket's. What differs between steps is in the bucket's input block
// (decode_step_inputs.h), rewritten before each replay; a cache that grew
// (ShardState::ReserveKv) is just a new pointer in it. The logits land in the
// bucket's own buffer and come back after the replay.
//
// Memory at fixed addresses for the graph's lifetime, nothing allocated
// inside it: the input block, the logits buffer, the graph's scratch arena
// (sized by what the bucket's first, eager step held at once) and one cuBLAS
// workspace for every GEMM of every bucket. One step runs on the graphs at a
// time (mu).
//
// TESSERA_DECODE_GRAPHS=0 in the environment turns graphs off (every step
// eager), as Engine::set_decode_graphs(false) does.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "worker/backend.h"
#include "worker/decode_step_inputs.h"
#include "worker/shard_state.h"

namespace tessera {

class DecodeGraphs {
 public:
  static constexpr int64_t kMaxRows = 64;
  // cuBLAS's own default on Hopper, so a captured GEMM picks what an eager one does.
  static constexpr int64_t kBlasWorkspaceBytes = int64_t{32} << 20;
  // A graph's scratch arena over what its eager step held: for blocks freed out of order.
  static int64_t ArenaBytes(int64_t scratch_bytes) { return scratch_bytes + scratch_bytes / 4 + (int64_t{1} << 20); }

  // Graphs on unless TESSERA_DECODE_GRAPHS=0.
  DecodeGraphs();

  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
  void set_enabled(bool enabled) { enabled_.store(enabled, std::memory_order_relaxed); }

  // The bucket's rows for a step of `rows` (1 ... kMaxRows), else 0.
  static int64_t BucketRows(int64_t rows);

  struct Bucket {
    explicit Bucket(const DecodeStepLayout& l) : layout(l) {}
    DecodeStepLayout layout;
    Buffer inputs;   // (1, 2·layout.words()) as floats: the step's input block
    Buffer logits;   // (rows, vocab) fp32
    bool warmed = false;             // a step ran its ops eagerly (the first, before the capture)
    int64_t scratch_bytes = 0;       // the most scratch that eager step held at once
    Buffer arena;                    // the graph's scratch (OpStream::Capture), kept with it
    std::unique_ptr<OpGraph> graph;  // null until captured
    absl::Status capture_failed;     // not OK: the capture failed, steps of this bucket run eager
  };

  // Buckets whose graph is captured, and the first capture error (OK: none).
  int64_t captured();
  absl::Status first_capture_error();

  // Hold while using anything below.
  std::mutex& mu() { return mu_; }
  // The bucket for `rows`, its buffers made on first use (mu held).
  absl::StatusOr<Bucket*> GetBucket(Backend& backend, const ModelConfig& config, int64_t rows);
  // The state every padding row runs on (mu held), made on first use.
  absl::StatusOr<ShardState*> Padding(Backend& backend, const ModelConfig& config, OpStream& ops);
  // The cuBLAS workspace of every captured GEMM (mu held), made on first use.
  absl::StatusOr<Tensor> BlasWorkspace(Backend& backend);

 private:
  std::atomic<bool> enabled_;
  std::mutex mu_;
  std::map<int64_t, std::unique_ptr<Bucket>> buckets_;  // by rows
  std::unique_ptr<ShardState> padding_;
  Buffer blas_workspace_;
};

}  // namespace tessera
