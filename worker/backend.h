// What the layer loop (forward.h) asks of a backend, and nothing more: where
// its memory lives, the model's tensors in that memory, persistent buffers
// for K/V and states, and a stream of ops for one call. The ops are the
// kernels' own entry points (kernels/<op>.h), each run on the backend's
// device in call order; the layer loop builds their params once for every
// backend, so the CPU and CUDA passes cannot drift apart.
//
// Implementations: worker/cpu (the fp32 reference, OpenBLAS) and worker/cuda.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/cast.h"
#include "kernels/causal_conv1d.h"
#include "kernels/conv_step.h"
#include "kernels/cuda_stream.h"
#include "kernels/decode_attention.h"
#include "kernels/decode_rope_append.h"
#include "kernels/dt_softplus.h"
#include "kernels/embedding.h"
#include "kernels/gated_rms_norm.h"
#include "kernels/linear.h"
#include "kernels/moe_experts.h"
#include "kernels/moe_route.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/scale_add.h"
#include "kernels/ssd_compose.h"
#include "kernels/ssd_scan.h"
#include "kernels/ssd_step.h"
#include "transport/peer_transport.h"
#include "worker/model_tensors.h"
#include "worker/tensor.h"

namespace tessera {

// Ops captured once (OpStream::Capture) and replayed as one launch (a CUDA
// graph): every pointer, shape and launch parameter is fixed at capture, so
// what changes between replays must be read from memory the ops read.
class OpGraph {
 public:
  virtual ~OpGraph() = default;
};

// One call's ops, enqueued in order on one stream of one device. Not thread
// safe; one per forward pass or AttendKv answer.
class OpStream {
 public:
  virtual ~OpStream() = default;

  // Scratch for this call, uninitialized, packed (rows, cols); freed in
  // stream order when the Buffer goes.
  virtual absl::StatusOr<Buffer> Scratch(int64_t rows, int64_t cols, ElementType type) = 0;
  virtual absl::Status Zero(const Tensor& t) = 0;
  // `host` holds t.rows packed rows of t.cols elements of t.type.
  virtual absl::Status Upload(const void* host, const Tensor& to) = 0;
  // Into packed host rows; returns once they are there.
  virtual absl::Status Download(const Tensor& from, void* host) = 0;
  // Returns once everything enqueued so far has completed.
  virtual absl::Status Finish() = 0;
  // Progress without stalling the device: Mark() records a point after
  // everything enqueued so far and returns its number (0, 1, ... per stream);
  // MarkReached says whether the work before that point has completed,
  // waiting until it has when `wait` (then always true).
  virtual absl::StatusOr<int64_t> Mark() = 0;
  virtual absl::StatusOr<bool> MarkReached(int64_t mark, bool wait) = 0;
  // The stream a device transport orders its transfers on (null on the CPU).
  virtual CudaStream cuda_stream() const = 0;
  // Orders two streams of one backend: the work `later` enqueues from now on
  // runs after everything enqueued here so far (a no-op where ops complete as
  // they are enqueued: the CPU). How an exchange runs beside the compute.
  virtual absl::Status Precede(OpStream& later) = 0;

  // out (ids.size(), hidden) fp32 = table rows of the host token ids.
  virtual absl::Status Embed(absl::Span<const int32_t> ids, const Tensor& table, const Tensor& out) = 0;

  // The most scratch bytes this stream has held at once (Scratch's rounding
  // included): what a captured run of the same ops needs as its arena.
  virtual int64_t scratch_high_water() const = 0;
  // Captures the ops `enqueue` puts on this stream, without running them, as
  // a graph that Launch replays on any stream of this backend. Inside, Scratch
  // is carved from `arena` (the backend's memory, kept as long as the graph:
  // the same addresses every replay, nothing allocated by the graph; freed
  // scratch is reused last in, first out; RESOURCE_EXHAUSTED when it does not
  // fit), and nothing may wait for the device (Download, Finish, Mark).
  // UNIMPLEMENTED where the backend has no graphs (the CPU).
  virtual absl::StatusOr<std::unique_ptr<OpGraph>> Capture(absl::FunctionRef<absl::Status()> enqueue,
                                                           const Tensor& arena) = 0;
  // Enqueues one replay of `graph` (made by Capture on this backend); one
  // replay of a graph at a time.
  virtual absl::Status Launch(OpGraph& graph) = 0;

  // The kernels (kernels/<op>.h), all pointers in this backend's memory.
  // Embedding here reads ids from this memory too (Embed takes host ids).
  virtual absl::Status Run(const EmbeddingParams& p) = 0;
  virtual absl::Status Run(const LinearParams& p) = 0;
  virtual absl::Status Run(const CastParams& p) = 0;
  virtual absl::Status Run(const RmsNormParams& p) = 0;
  virtual absl::Status Run(const GatedRmsNormParams& p) = 0;
  virtual absl::Status Run(const CausalConv1dParams& p) = 0;
  virtual absl::Status Run(const ConvStepParams& p) = 0;
  virtual absl::Status Run(const DtSoftplusParams& p) = 0;
  virtual absl::Status Run(const SsdScanParams& p) = 0;
  virtual absl::Status Run(const SsdAddInitialStateParams& p) = 0;
  virtual absl::Status Run(const SsdComposeParams& p) = 0;
  virtual absl::Status Run(const SsdStepParams& p) = 0;
  virtual absl::Status Run(const RopeParams& p) = 0;
  virtual absl::Status Run(const AttentionParams& p) = 0;
  virtual absl::Status Run(const DecodeAttentionParams& p) = 0;
  virtual absl::Status Run(const DecodeRopeAppendParams& p) = 0;
  virtual absl::Status Run(const AttentionMergeParams& p) = 0;
  virtual absl::Status Run(const SiluMulParams& p) = 0;
  virtual absl::Status Run(const ReluSquaredParams& p) = 0;
  virtual absl::Status Run(const ScaleAddParams& p) = 0;
  virtual absl::Status Run(const MoeRouteParams& p) = 0;
  virtual absl::Status Run(const MoeExpertsParams& p) = 0;
};

// One model on one device, for the engine's lifetime. Thread safe.
class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu" or "cuda".
  virtual std::string name() const = 0;
  // One line for logs: backend, precision, device.
  virtual std::string Describe() const = 0;
  // The device this backend computes on ("GPU-<uuid>"); empty on the CPU.
  virtual std::string device_id() const = 0;
  // Where buffers live (what a peer transport must move).
  virtual BufferSpace space() const = 0;
  // The storage type of weight matrices, K/V and the activations that feed a
  // matrix product or come out of one (GEMM operands and outputs, the conv's
  // input and output, the scan's x, B, C); the residual stream, the scan's
  // output, vectors, softmax statistics, the router's input and every state
  // are fp32.
  virtual ElementType matrix_type() const = 0;
  // The model's weights in this backend's memory.
  virtual const ModelTensors& tensors() const = 0;

  // A stream for one call, on the calling thread (which it binds to the
  // backend's device).
  virtual absl::StatusOr<std::unique_ptr<OpStream>> NewStream() = 0;
  // A stream for a call someone waits on token by token (a decode step, a
  // peer's split-KV query): on a GPU its kernels are scheduled ahead of a
  // prefill's whenever both are queued (not enough alone to keep a long
  // prefill from delaying decode steps: decode_turns.h). Elsewhere a plain
  // stream.
  virtual absl::StatusOr<std::unique_ptr<OpStream>> NewLatencyStream() { return NewStream(); }
  // Memory that outlives a call (K/V, states): (rows, cols) packed, zeroed.
  virtual absl::StatusOr<Buffer> Allocate(int64_t rows, int64_t cols, ElementType type) = 0;

  // The K/V + state budget a worker takes when not told: 1 GiB on the CPU;
  // on a GPU half the device memory free after the weights.
  virtual int64_t DefaultMemoryBudgetBytes() const = 0;
  // The longest shard one forward pass can prefill when `memory_budget_bytes`
  // are set aside for K/V and states; 0: no limit known (the CPU).
  virtual int64_t PrefillTokenLimit(int64_t memory_budget_bytes) const = 0;
};

}  // namespace tessera
