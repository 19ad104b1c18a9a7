// Every entry point makes the backend's device current first: calls arrive on
// arbitrary gRPC threads. Scratch is stream-ordered (cudaMallocAsync, freed
// with cudaFreeAsync on the same stream), so a call never waits to free, and
// buffers that an aborted NCCL kernel may still touch are released only after
// it; a captured graph's scratch comes from its arena (scratch_arena.h).
#include "worker/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "worker/backend.h"
#include "worker/cuda/cuda_status.h"
#include "worker/cuda/scratch_arena.h"
#include "worker/cuda/weight_upload.h"

namespace tessera {
namespace {

using cuda_engine::CudaStatus;

absl::Status UseDevice(int device) {
  return CudaStatus(absl::StrCat("cudaSetDevice(", device, ")"), cudaSetDevice(device));
}

// Device bytes one prompt token of a prefill needs at the peak of a pass:
// what the layer loop (worker/forward.cc) holds at once, per token, with a
// margin for the allocator and cuBLAS workspaces; logits of every row are not
// counted. The whole pass holds the residual stream and the normed rows (and
// the router's fp32 copy, granite's scaled block output); each block adds its
// own scratch while it runs, in the matrix type wherever a matrix product
// reads or writes it (`b` bytes an element), fp32 elsewhere.
int64_t ActivationBytesPerToken(const ModelConfig& c, ElementType type) {
  const int64_t f32 = sizeof(float);
  const int64_t b = ElementBytes(type);
  const int64_t d = c.hidden_size;
  const bool router_copy = type != ElementType::kF32 && c.CountBlocks(BlockKind::kMoe) > 0;
  const int64_t common = f32 * d + b * d + (router_copy ? f32 * d : 0) + (c.multipliers.residual != 1.0f ? f32 * d : 0);
  int64_t widest = 0;
  if (c.CountBlocks(BlockKind::kMamba) > 0) {
    const MambaConfig& m = c.mamba;
    const int64_t gn = m.num_groups * m.state_size;
    // while the scan runs: fp32's chunk scratch (cumsum, C·Bᵀ, chunk states; bf16 keeps its own on chip);
    // then, in a shard, C as fp32 and the cumsum for the initial state's term
    const int64_t chunk_scratch =
        type == ElementType::kF32
            ? f32 * (m.num_heads + m.num_groups * m.chunk_size + m.num_heads * m.head_dim * m.state_size / m.chunk_size)
            : 0;
    const int64_t during_scan = std::max(chunk_scratch, f32 * (gn + m.num_heads));
    // in_proj output (z, later the gated norm's output), conv output, dt, the scan's y
    widest = std::max(widest, b * (m.in_proj_width() + m.conv_channels()) + f32 * (m.num_heads + m.d_inner()) +
                                  during_scan);
  }
  if (c.CountBlocks(BlockKind::kMoe) > 0) {
    const MoeConfig& m = c.moe;
    const int64_t shared = m.shared_intermediate_size * m.shared_experts;
    const int64_t shared_up = b * (m.activation == MlpActivation::kSwiGlu ? 2 * shared : shared);
    // router logits, ids and weights, and MoeExperts' workspace rows: k (token, slot) pairs, each
    // with x, act and out in the matrix type and the sort's indices; freed before the shared expert runs
    const int64_t pair = b * d + b * (m.expert_intermediate_size + 8) + b * d + 8;
    const int64_t routed = m.experts == 0 ? 0 : f32 * m.experts + 8 * m.top_k + m.top_k * pair;
    widest = std::max(widest, std::max(routed, shared_up));
  }
  if (c.CountBlocks(BlockKind::kAttention) > 0) {
    const AttentionConfig& a = c.attention;
    const int64_t q = a.num_heads * a.head_dim;
    const int64_t kv_width = a.num_kv_heads * a.head_dim;
    // then either the ring's partial out and lse with its send and receive blocks, or o_proj's operand
    const int64_t ring = f32 * (q + a.num_heads) + 2 * 2 * b * kv_width;
    const int64_t operand = type == ElementType::kF32 ? 0 : b * q;
    // q|k|v, attention's out and lse
    widest = std::max(widest, b * (q + 2 * kv_width) + f32 * (q + a.num_heads) + std::max(ring, operand));
  }
  if (c.CountBlocks(BlockKind::kMlp) > 0) {
    const int64_t inner = c.mlp.intermediate_size;
    widest = std::max(widest, b * (c.mlp.activation == MlpActivation::kSwiGlu ? 2 * inner : inner));  // [gate |] up
  }
  return (common + widest) * 5 / 4;
}

// Scratch comes from the device's default pool (cudaMallocAsync). With the
// default release threshold (0) the pool hands its memory back to the driver
// at every synchronisation, and the next pass maps it again page by page:
// 63 ms of a 416 ms prefill at 64K tokens on an H200 (forward_bench beside
// ncu's kernel sum). Keeping what it has makes a pass after the first reuse
// it; the pool stays within the activation room PrefillTokenLimit plans for.
// And no allocation waits on another stream: by default the pool may hand a
// stream memory that another stream freed but has not reached yet, making
// the taker wait for that stream's queued work (a decode step for a
// prefill's). Without internal dependencies the pool reuses only frees that
// have completed (or were on the same stream) and otherwise grows. (Turning
// this off did not change the stall of decode steps beside a prefill
// measured with decode_during_prefill_bench: that was the pageable download,
// see PooledStream.)
absl::Status ConfigurePool(int device) {
  cudaMemPool_t pool = nullptr;
  RETURN_IF_ERROR(CudaStatus("cudaDeviceGetDefaultMemPool", cudaDeviceGetDefaultMemPool(&pool, device)));
  uint64_t keep = UINT64_MAX;
  RETURN_IF_ERROR(
      CudaStatus("cudaMemPoolSetAttribute", cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep)));
  int no = 0;
  return CudaStatus("cudaMemPoolSetAttribute",
                    cudaMemPoolSetAttribute(pool, cudaMemPoolReuseAllowInternalDependencies, &no));
}

// "GPU-" and the device's UUID, as nvidia-smi -L prints it: the same GPU
// seen by two processes (whatever their device index) has the same id.
std::string DeviceId(const cudaDeviceProp& prop) {
  const auto* b = reinterpret_cast<const unsigned char*>(prop.uuid.bytes);
  return absl::StrFormat("GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
                         b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

// A stream and the pinned host buffer its downloads land in first. A copy to
// pageable memory is synchronous inside the driver, which stages it through
// its own pinned buffers; to pinned memory it is an ordinary async copy and
// the wait is cudaStreamSynchronize on this stream alone.
struct PooledStream {
  cudaStream_t stream = nullptr;
  void* staging = nullptr;  // pinned, `staging_bytes`
  size_t staging_bytes = 0;

  ~PooledStream() {
    if (staging != nullptr) cudaFreeHost(staging);
    if (stream != nullptr) cudaStreamDestroy(stream);  // queued work still completes
  }
  // At least `bytes` of pinned staging (grown rarely: logits rows).
  absl::Status ReserveStaging(size_t bytes) {
    if (bytes <= staging_bytes) return absl::OkStatus();
    if (staging != nullptr) cudaFreeHost(staging);
    staging = nullptr;
    staging_bytes = 0;
    const size_t grown = std::max(bytes, size_t{1} << 20);
    RETURN_IF_ERROR(CudaStatus("cudaHostAlloc", cudaHostAlloc(&staging, grown, cudaHostAllocDefault)));
    staging_bytes = grown;
    return absl::OkStatus();
  }
};

// Streams of one priority, kept and handed out again instead of destroyed: no
// stream made and destroyed per call, cuBLAS sees each stream once, and each
// keeps its pinned staging buffer. A stream given back with work still queued
// (a call that failed midway, an NCCL kernel waiting for a peer that died) is
// destroyed instead, so no later call queues behind that work.
class StreamPool {
 public:
  explicit StreamPool(int priority) : priority_(priority) {}
  StreamPool(const StreamPool&) = delete;
  StreamPool& operator=(const StreamPool&) = delete;

  // A kept stream, or a new one; the caller has set the device.
  absl::StatusOr<std::unique_ptr<PooledStream>> Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        std::unique_ptr<PooledStream> kept = std::move(free_.back());
        free_.pop_back();
        return kept;
      }
    }
    auto fresh = std::make_unique<PooledStream>();
    RETURN_IF_ERROR(CudaStatus("cudaStreamCreate",
                               cudaStreamCreateWithPriority(&fresh->stream, cudaStreamNonBlocking, priority_)));
    return fresh;
  }
  void Give(std::unique_ptr<PooledStream> used) {
    if (cudaStreamQuery(used->stream) != cudaSuccess) {
      cudaGetLastError();  // clears cudaErrorNotReady from the last-error slot
      return;              // destroyed: its work still completes
    }
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(used));
  }

 private:
  const int priority_;
  std::mutex mu_;
  std::vector<std::unique_ptr<PooledStream>> free_;  // as many as calls ever ran at once
};

// A captured step: the graph and its one executable instance.
class CudaOpGraph final : public OpGraph {
 public:
  CudaOpGraph(cudaGraph_t graph, cudaGraphExec_t exec) : graph_(graph), exec_(exec) {}
  ~CudaOpGraph() override {
    cudaGraphExecDestroy(exec_);
    cudaGraphDestroy(graph_);
  }
  cudaGraphExec_t exec() const { return exec_; }

 private:
  cudaGraph_t graph_;
  cudaGraphExec_t exec_;
};

class CudaOpStream final : public OpStream {
 public:
  CudaOpStream(std::unique_ptr<PooledStream> pooled, StreamPool& pool)
      : stream_(pooled->stream), pooled_(std::move(pooled)), pool_(pool) {}
  ~CudaOpStream() override {  // pending work still completes, and so do pending events
    for (cudaEvent_t event : marks_) cudaEventDestroy(event);
    pool_.Give(std::move(pooled_));
  }

  // From the pool, stream-ordered; while capturing, from the capture's arena.
  absl::StatusOr<Buffer> Scratch(int64_t rows, int64_t cols, ElementType type) override {
    Tensor t{nullptr, type, rows, cols, cols};
    const int64_t bytes = rows * cols * ElementBytes(type);
    if (bytes == 0) return Buffer(t, nullptr);
    if (arena_ != nullptr) {
      ASSIGN_OR_RETURN(t.data, arena_->Take(bytes));
      std::shared_ptr<cuda_engine::ScratchArena> arena = arena_;
      return Buffer(t, [arena](void* p) { arena->Give(p); });
    }
    RETURN_IF_ERROR(CudaStatus("scratch", cudaMallocAsync(&t.data, static_cast<size_t>(bytes), stream_)));
    const int64_t held = cuda_engine::ScratchArena::Rounded(bytes);
    usage_->held += held;
    usage_->high_water = std::max(usage_->high_water, usage_->held);
    cudaStream_t stream = stream_;
    std::shared_ptr<ScratchUsage> usage = usage_;
    return Buffer(t, [stream, usage, held](void* p) {
      cudaFreeAsync(p, stream);
      usage->held -= held;
    });
  }
  int64_t scratch_high_water() const override { return usage_->high_water; }
  absl::Status Zero(const Tensor& t) override {
    if (t.rows == 0 || t.cols == 0) return absl::OkStatus();
    const size_t row = static_cast<size_t>(t.element_bytes());
    return CudaStatus("zero", cudaMemset2DAsync(t.data, t.stride * row, 0, t.cols * row, t.rows, stream_));
  }
  absl::Status Upload(const void* host, const Tensor& to) override {
    if (to.rows == 0 || to.cols == 0) return absl::OkStatus();
    const size_t row = static_cast<size_t>(to.cols * to.element_bytes());
    return CudaStatus("upload", cudaMemcpy2DAsync(to.data, to.stride * to.element_bytes(), host, row, row, to.rows,
                                                  cudaMemcpyHostToDevice, stream_));
  }
  absl::Status Download(const Tensor& from, void* host) override {
    if (from.rows == 0 || from.cols == 0) return absl::OkStatus();
    const size_t row = static_cast<size_t>(from.cols * from.element_bytes());
    const size_t bytes = row * static_cast<size_t>(from.rows);
    RETURN_IF_ERROR(pooled_->ReserveStaging(bytes));  // through pinned memory: see PooledStream
    RETURN_IF_ERROR(CudaStatus("download", cudaMemcpy2DAsync(pooled_->staging, row, from.data,
                                                             from.stride * from.element_bytes(), row, from.rows,
                                                             cudaMemcpyDeviceToHost, stream_)));
    RETURN_IF_ERROR(Finish());
    std::memcpy(host, pooled_->staging, bytes);
    return absl::OkStatus();
  }
  absl::Status Finish() override { return CudaStatus("cudaStreamSynchronize", cudaStreamSynchronize(stream_)); }
  // One event a mark (a few per pass: one a layer), recorded without timing.
  absl::StatusOr<int64_t> Mark() override {
    cudaEvent_t event = nullptr;
    RETURN_IF_ERROR(CudaStatus("cudaEventCreate", cudaEventCreateWithFlags(&event, cudaEventDisableTiming)));
    marks_.push_back(event);
    RETURN_IF_ERROR(CudaStatus("cudaEventRecord", cudaEventRecord(event, stream_)));
    return static_cast<int64_t>(marks_.size()) - 1;
  }
  absl::StatusOr<bool> MarkReached(int64_t mark, bool wait) override {
    if (mark < 0 || mark >= static_cast<int64_t>(marks_.size())) {
      return absl::InternalError(absl::StrCat("no mark ", mark));
    }
    if (wait) {
      RETURN_IF_ERROR(CudaStatus("cudaEventSynchronize", cudaEventSynchronize(marks_[mark])));
      return true;
    }
    const cudaError_t e = cudaEventQuery(marks_[mark]);
    if (e == cudaErrorNotReady) return false;
    RETURN_IF_ERROR(CudaStatus("cudaEventQuery", e));
    return true;
  }
  CudaStream cuda_stream() const override { return stream_; }
  // An event recorded here that `later` waits on; destroying it after the
  // wait is enqueued leaves the wait in place.
  absl::Status Precede(OpStream& later) override {
    cudaEvent_t event = nullptr;
    RETURN_IF_ERROR(CudaStatus("cudaEventCreate", cudaEventCreateWithFlags(&event, cudaEventDisableTiming)));
    absl::Status status = CudaStatus("cudaEventRecord", cudaEventRecord(event, stream_));
    if (status.ok()) {
      status = CudaStatus("cudaStreamWaitEvent",
                          cudaStreamWaitEvent(static_cast<cudaStream_t>(later.cuda_stream()), event, 0));
    }
    cudaEventDestroy(event);
    return status;
  }

  // The ids go up once; cuda::Embedding checks them against the vocabulary.
  absl::Status Embed(absl::Span<const int32_t> ids, const Tensor& table, const Tensor& out) override {
    const int64_t n = static_cast<int64_t>(ids.size());
    ASSIGN_OR_RETURN(Buffer device_ids, Scratch(1, n, ElementType::kF32));  // (n) int32 ids, in 4-byte slots
    RETURN_IF_ERROR(CudaStatus("token ids", cudaMemcpyAsync(device_ids.view().data, ids.data(), n * sizeof(int32_t),
                                                            cudaMemcpyHostToDevice, stream_)));
    EmbeddingParams p;
    p.num_tokens = n;
    p.vocab_size = table.rows;
    p.hidden = table.cols;
    p.ids = static_cast<const int32_t*>(device_ids.view().data);
    p.table_type = table.type;
    p.table = table.data;
    p.out = out.f32();
    return cuda::Embedding(p, stream_);
  }

  // Relaxed capture: a thread's first GEMM creates its cuBLAS handle (a
  // cudaMalloc), which global capture would refuse. Scratch inside comes from
  // `arena`, so the graph has no allocation nodes.
  absl::StatusOr<std::unique_ptr<OpGraph>> Capture(absl::FunctionRef<absl::Status()> enqueue,
                                                   const Tensor& arena) override {
    RETURN_IF_ERROR(CudaStatus("cudaStreamBeginCapture", cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed)));
    arena_ = std::make_shared<cuda_engine::ScratchArena>(arena.data, arena.span_bytes());
    const absl::Status enqueued = enqueue();
    arena_ = nullptr;
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    if (!enqueued.ok() || ended != cudaSuccess) {
      if (graph != nullptr) cudaGraphDestroy(graph);
      cudaGetLastError();  // a broken capture is not sticky: clear it
      return enqueued.ok() ? CudaStatus("cudaStreamEndCapture", ended) : enqueued;
    }
    cudaGraphExec_t exec = nullptr;
    if (const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0); e != cudaSuccess) {
      cudaGraphDestroy(graph);
      return CudaStatus("cudaGraphInstantiate", e);
    }
    return std::make_unique<CudaOpGraph>(graph, exec);
  }
  absl::Status Launch(OpGraph& graph) override {
    return CudaStatus("cudaGraphLaunch", cudaGraphLaunch(static_cast<CudaOpGraph&>(graph).exec(), stream_));
  }

  absl::Status Run(const EmbeddingParams& p) override { return cuda::Embedding(p, stream_); }
  absl::Status Run(const LinearParams& p) override { return cuda::Linear(p, stream_); }
  absl::Status Run(const CastParams& p) override { return cuda::Cast(p, stream_); }
  absl::Status Run(const RmsNormParams& p) override { return cuda::RmsNorm(p, stream_); }
  absl::Status Run(const GatedRmsNormParams& p) override { return cuda::GatedRmsNorm(p, stream_); }
  absl::Status Run(const CausalConv1dParams& p) override { return cuda::CausalConv1d(p, stream_); }
  absl::Status Run(const ConvStepParams& p) override { return cuda::ConvStep(p, stream_); }
  absl::Status Run(const DtSoftplusParams& p) override { return cuda::DtSoftplus(p, stream_); }
  absl::Status Run(const SsdScanParams& p) override { return cuda::SsdScan(p, stream_); }
  absl::Status Run(const SsdAddInitialStateParams& p) override { return cuda::SsdAddInitialState(p, stream_); }
  absl::Status Run(const SsdComposeParams& p) override { return cuda::SsdComposeInitialState(p, stream_); }
  absl::Status Run(const SsdStepParams& p) override { return cuda::SsdStep(p, stream_); }
  absl::Status Run(const RopeParams& p) override { return cuda::Rope(p, stream_); }
  // Decode-shaped attention splits its keys across thread blocks when given
  // room for the partial results: stream-ordered scratch, freed after the
  // kernels (a batch's is sized by batch and heads, not lengths).
  absl::Status Run(const AttentionParams& p) override {
    return WithWorkspace(p, p.workspace == nullptr ? cuda::AttentionWorkspaceBytes(p) : 0,
                         [this](const AttentionParams& q) { return cuda::Attention(q, stream_); });
  }
  absl::Status Run(const DecodeAttentionParams& p) override {
    return WithWorkspace(p, p.workspace == nullptr ? cuda::DecodeAttentionWorkspaceBytes(p) : 0,
                         [this](const DecodeAttentionParams& q) { return cuda::DecodeAttention(q, stream_); });
  }
  absl::Status Run(const DecodeRopeAppendParams& p) override { return cuda::DecodeRopeAppend(p, stream_); }
  absl::Status Run(const AttentionMergeParams& p) override { return cuda::AttentionMerge(p, stream_); }
  absl::Status Run(const SiluMulParams& p) override { return cuda::SiluMul(p, stream_); }
  absl::Status Run(const ReluSquaredParams& p) override { return cuda::ReluSquared(p, stream_); }
  absl::Status Run(const ScaleAddParams& p) override { return cuda::ScaleAdd(p, stream_); }
  absl::Status Run(const MoeRouteParams& p) override { return cuda::MoeRoute(p, stream_); }
  absl::Status Run(const MoeExpertsParams& p) override { return cuda::MoeExperts(p, stream_); }

 private:
  // `run` of `p` with `bytes` of scratch as its workspace (none when 0).
  template <typename Params, typename Run>
  absl::Status WithWorkspace(const Params& p, int64_t bytes, Run run) {
    if (bytes == 0) return run(p);
    ASSIGN_OR_RETURN(Buffer workspace, Scratch(1, (bytes + 3) / 4, ElementType::kF32));  // `bytes`, as floats
    Params with_workspace = p;
    with_workspace.workspace = workspace.view().data;
    with_workspace.workspace_bytes = bytes;
    return run(with_workspace);
  }

  // Scratch bytes from the pool held now and at most (shared with the
  // deleters, which may run after the stream is gone).
  struct ScratchUsage {
    int64_t held = 0;
    int64_t high_water = 0;
  };

  cudaStream_t stream_;
  std::unique_ptr<PooledStream> pooled_;  // stream_ and its staging
  StreamPool& pool_;                      // where pooled_ goes back
  std::vector<cudaEvent_t> marks_;  // by mark number
  std::shared_ptr<ScratchUsage> usage_ = std::make_shared<ScratchUsage>();
  std::shared_ptr<cuda_engine::ScratchArena> arena_;  // while capturing
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, std::string device_id, ElementType type, std::string device_name,
              std::vector<Buffer> weight_buffers,
              int64_t weight_bytes, ModelTensors tensors, const ModelConfig& config, int64_t free_after_weights)
      : device_(device), device_id_(std::move(device_id)), type_(type), device_name_(std::move(device_name)),
        weight_buffers_(std::move(weight_buffers)), weight_bytes_(weight_bytes), tensors_(std::move(tensors)),
        activation_bytes_per_token_(ActivationBytesPerToken(config, type)),
        free_after_weights_(free_after_weights) {
    int lowest = 0, highest = 0;  // one priority for all if the query fails: slower beside a prefill, still right
    if (cudaDeviceGetStreamPriorityRange(&lowest, &highest) != cudaSuccess) {
      cudaGetLastError();
      lowest = highest = 0;
    }
    streams_ = std::make_unique<StreamPool>(lowest);
    latency_streams_ = std::make_unique<StreamPool>(highest);
  }

  std::string name() const override { return "cuda"; }
  std::string Describe() const override {
    return absl::StrFormat("cuda backend, %s, device %d (%s), weights %.2f GiB", ElementTypeName(type_), device_,
                           device_name_, static_cast<double>(weight_bytes_) / (1 << 30));
  }
  std::string device_id() const override { return device_id_; }
  BufferSpace space() const override { return BufferSpace::kDevice; }
  ElementType matrix_type() const override { return type_; }
  const ModelTensors& tensors() const override { return tensors_; }

  absl::StatusOr<std::unique_ptr<OpStream>> NewStream() override { return StreamFrom(*streams_); }
  absl::StatusOr<std::unique_ptr<OpStream>> NewLatencyStream() override { return StreamFrom(*latency_streams_); }

  absl::StatusOr<Buffer> Allocate(int64_t rows, int64_t cols, ElementType type) override {
    RETURN_IF_ERROR(UseDevice(device_));
    Tensor t{nullptr, type, rows, cols, cols};
    const size_t bytes = static_cast<size_t>(rows * cols * ElementBytes(type));
    if (bytes == 0) return Buffer(t, nullptr);
    RETURN_IF_ERROR(CudaStatus("cudaMalloc", cudaMalloc(&t.data, bytes)));
    Buffer buffer(t, [](void* p) { cudaFree(p); });
    // Zeroed before it is returned. cudaMemset would queue the zeroing on the
    // legacy default stream, which the worker's non-blocking streams do not
    // wait for: what the caller queues next (a decode step's input block
    // upload, a prefill writing K/V) could run first and be zeroed after.
    // Seen with two workers warming up on one GPU (~1 start in 3): a decode
    // graph's pointer table zeroed under it, an illegal address in SsdStep.
    ASSIGN_OR_RETURN(std::unique_ptr<PooledStream> zeroing, streams_->Take());
    absl::Status zeroed = CudaStatus("cudaMemsetAsync", cudaMemsetAsync(t.data, 0, bytes, zeroing->stream));
    if (zeroed.ok()) zeroed = CudaStatus("cudaStreamSynchronize", cudaStreamSynchronize(zeroing->stream));
    streams_->Give(std::move(zeroing));
    RETURN_IF_ERROR(zeroed);
    return buffer;
  }

  int64_t DefaultMemoryBudgetBytes() const override { return free_after_weights_ / 2; }
  int64_t PrefillTokenLimit(int64_t memory_budget_bytes) const override {
    const int64_t room = free_after_weights_ - memory_budget_bytes;
    return room > 0 ? room / activation_bytes_per_token_ : 0;
  }

 private:
  absl::StatusOr<std::unique_ptr<OpStream>> StreamFrom(StreamPool& pool) {
    RETURN_IF_ERROR(UseDevice(device_));
    ASSIGN_OR_RETURN(std::unique_ptr<PooledStream> pooled, pool.Take());
    return std::make_unique<CudaOpStream>(std::move(pooled), pool);
  }

  int device_;
  // Prefill passes at the device's lowest priority, decode steps and split-KV
  // queries at its highest (cudaDeviceGetStreamPriorityRange): when both have
  // kernels queued, the latency streams' blocks are scheduled first.
  std::unique_ptr<StreamPool> streams_;
  std::unique_ptr<StreamPool> latency_streams_;
  std::string device_id_;
  ElementType type_;
  std::string device_name_;
  std::vector<Buffer> weight_buffers_;  // the memory `tensors_` views
  int64_t weight_bytes_;
  ModelTensors tensors_;
  int64_t activation_bytes_per_token_;
  int64_t free_after_weights_;  // device bytes free once the weights were uploaded
};

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

absl::StatusOr<std::unique_ptr<Engine>> MakeCudaEngine(std::unique_ptr<ModelWeights> weights,
                                                       const CudaEngineOptions& options) {
  if (weights == nullptr) return absl::InvalidArgumentError("MakeCudaEngine: no weights");
  const int devices = CudaDeviceCount();
  if (options.device < 0 || options.device >= devices) {
    return absl::FailedPreconditionError(absl::StrCat("CUDA device ", options.device, " does not exist (", devices,
                                                      " visible)"));
  }
  const ModelConfig config = weights->config;
  if (options.type == ElementType::kBF16 && config.CountBlocks(BlockKind::kAttention) > 0 &&
      config.attention.head_dim > 128) {
    return absl::UnimplementedError(absl::StrCat("bf16 attention supports head_dim <= 128; this model has ",
                                                 config.attention.head_dim, " (use --precision fp32)"));
  }
  RETURN_IF_ERROR(UseDevice(options.device));
  RETURN_IF_ERROR(ConfigurePool(options.device));
  cudaDeviceProp prop{};
  RETURN_IF_ERROR(CudaStatus("cudaGetDeviceProperties", cudaGetDeviceProperties(&prop, options.device)));
  cuda_engine::WeightUploader uploader(options.type);
  const TensorPlacer place = [&uploader](const HostTensor& host, bool matrix) { return uploader.Place(host, matrix); };
  const TensorStacker stack = [&uploader](const std::vector<const HostTensor*>& parts, bool matrix) {
    return uploader.Stack(parts, matrix);
  };
  ASSIGN_OR_RETURN(ModelTensors tensors, PlaceModelTensors(*weights, place, stack));
  // cudaMemcpy from pageable memory returns once the bytes are staged, its
  // DMA queued on the legacy stream, which the non-blocking streams the
  // kernels run on do not wait for: the weights land before any kernel reads them.
  RETURN_IF_ERROR(CudaStatus("cudaDeviceSynchronize", cudaDeviceSynchronize()));
  weights.reset();  // the host copy (and the checkpoint mapping) is no longer needed
  size_t free_bytes = 0, total_bytes = 0;
  RETURN_IF_ERROR(CudaStatus("cudaMemGetInfo", cudaMemGetInfo(&free_bytes, &total_bytes)));
  const int64_t weight_bytes = uploader.bytes();
  auto backend = std::make_unique<CudaBackend>(options.device, DeviceId(prop), options.type, prop.name,
                                               uploader.TakeBuffers(),
                                               weight_bytes, std::move(tensors), config,
                                               static_cast<int64_t>(free_bytes));
  return std::make_unique<Engine>(config, std::move(backend));
}

}  // namespace tessera
