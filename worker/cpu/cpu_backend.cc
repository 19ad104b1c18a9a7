// Ops run at once on the calling thread, so Finish has nothing to wait for and
// every mark is reached when it is made; weights are views of the host tensors (zero-copy from the checkpoint's
// mapping where it holds aligned fp32).
#include "worker/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/backend.h"

namespace tessera {
namespace {

// Host memory for a tensor (rows, cols) of `type`, packed.
absl::StatusOr<Buffer> HostBuffer(int64_t rows, int64_t cols, ElementType type, bool zeroed) {
  Tensor t{nullptr, type, rows, cols, cols};
  const size_t bytes = static_cast<size_t>(rows * cols * ElementBytes(type));
  if (bytes == 0) return Buffer(t, nullptr);
  t.data = zeroed ? std::calloc(bytes, 1) : std::malloc(bytes);
  if (t.data == nullptr) return absl::ResourceExhaustedError(absl::StrCat("out of host memory for ", bytes, " bytes"));
  return Buffer(t, [](void* p) { std::free(p); });
}

// Row by row between a packed host array and a (possibly strided) tensor.
void CopyRows(const void* from, int64_t from_stride_bytes, void* to, int64_t to_stride_bytes, int64_t rows,
              int64_t row_bytes) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(static_cast<char*>(to) + r * to_stride_bytes, static_cast<const char*>(from) + r * from_stride_bytes,
                row_bytes);
  }
}

class CpuOpStream final : public OpStream {
 public:
  absl::StatusOr<Buffer> Scratch(int64_t rows, int64_t cols, ElementType type) override {
    return HostBuffer(rows, cols, type, /*zeroed=*/false);
  }
  absl::Status Zero(const Tensor& t) override {
    for (int64_t r = 0; r < t.rows; ++r) {
      std::memset(static_cast<char*>(t.data) + r * t.stride * t.element_bytes(), 0, t.cols * t.element_bytes());
    }
    return absl::OkStatus();
  }
  absl::Status Upload(const void* host, const Tensor& to) override {
    const int64_t row_bytes = to.cols * to.element_bytes();
    CopyRows(host, row_bytes, to.data, to.stride * to.element_bytes(), to.rows, row_bytes);
    return absl::OkStatus();
  }
  absl::Status Download(const Tensor& from, void* host) override {
    const int64_t row_bytes = from.cols * from.element_bytes();
    CopyRows(from.data, from.stride * from.element_bytes(), host, row_bytes, from.rows, row_bytes);
    return absl::OkStatus();
  }
  absl::Status Finish() override { return absl::OkStatus(); }
  absl::StatusOr<int64_t> Mark() override { return marks_++; }
  absl::StatusOr<bool> MarkReached(int64_t mark, bool) override {
    if (mark < 0 || mark >= marks_) return absl::InternalError(absl::StrCat("no mark ", mark));
    return true;
  }
  CudaStream cuda_stream() const override { return nullptr; }
  absl::Status Precede(OpStream&) override { return absl::OkStatus(); }

  absl::Status Embed(absl::Span<const int32_t> ids, const Tensor& table, const Tensor& out) override {
    EmbeddingParams p;
    p.num_tokens = static_cast<int64_t>(ids.size());
    p.vocab_size = table.rows;
    p.hidden = table.cols;
    p.ids = ids.data();
    p.table_type = table.type;
    p.table = table.data;
    p.out = out.f32();
    return cpu::Embedding(p);
  }

  int64_t scratch_high_water() const override { return 0; }
  absl::StatusOr<std::unique_ptr<OpGraph>> Capture(absl::FunctionRef<absl::Status()>, const Tensor&) override {
    return absl::UnimplementedError("the CPU backend has no graphs");
  }
  absl::Status Launch(OpGraph&) override { return absl::UnimplementedError("the CPU backend has no graphs"); }

  absl::Status Run(const EmbeddingParams& p) override { return cpu::Embedding(p); }
  absl::Status Run(const LinearParams& p) override { return cpu::Linear(p); }
  absl::Status Run(const CastParams& p) override { return cpu::Cast(p); }
  absl::Status Run(const RmsNormParams& p) override { return cpu::RmsNorm(p); }
  absl::Status Run(const GatedRmsNormParams& p) override { return cpu::GatedRmsNorm(p); }
  absl::Status Run(const CausalConv1dParams& p) override { return cpu::CausalConv1d(p); }
  absl::Status Run(const ConvStepParams& p) override { return cpu::ConvStep(p); }
  absl::Status Run(const DtSoftplusParams& p) override { return cpu::DtSoftplus(p); }
  absl::Status Run(const SsdScanParams& p) override { return cpu::SsdScan(p); }
  absl::Status Run(const SsdAddInitialStateParams& p) override { return cpu::SsdAddInitialState(p); }
  absl::Status Run(const SsdComposeParams& p) override { return cpu::SsdComposeInitialState(p); }
  absl::Status Run(const SsdStepParams& p) override { return cpu::SsdStep(p); }
  absl::Status Run(const RopeParams& p) override { return cpu::Rope(p); }
  absl::Status Run(const AttentionParams& p) override { return cpu::Attention(p); }
  absl::Status Run(const DecodeAttentionParams& p) override { return cpu::DecodeAttention(p); }
  absl::Status Run(const DecodeRopeAppendParams& p) override { return cpu::DecodeRopeAppend(p); }
  absl::Status Run(const AttentionMergeParams& p) override { return cpu::AttentionMerge(p); }
  absl::Status Run(const SiluMulParams& p) override { return cpu::SiluMul(p); }
  absl::Status Run(const ReluSquaredParams& p) override { return cpu::ReluSquared(p); }
  absl::Status Run(const ScaleAddParams& p) override { return cpu::ScaleAdd(p); }
  absl::Status Run(const MoeRouteParams& p) override { return cpu::MoeRoute(p); }
  absl::Status Run(const MoeExpertsParams& p) override { return cpu::MoeExperts(p); }

 private:
  int64_t marks_ = 0;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(std::unique_ptr<ModelWeights> owned, std::vector<std::vector<float>> stacked, ModelTensors tensors)
      : owned_(std::move(owned)), stacked_(std::move(stacked)), tensors_(std::move(tensors)) {}

  std::string name() const override { return "cpu"; }
  std::string Describe() const override { return "cpu backend, fp32"; }
  std::string device_id() const override { return ""; }
  BufferSpace space() const override { return BufferSpace::kHost; }
  ElementType matrix_type() const override { return ElementType::kF32; }
  const ModelTensors& tensors() const override { return tensors_; }
  absl::StatusOr<std::unique_ptr<OpStream>> NewStream() override { return std::make_unique<CpuOpStream>(); }
  absl::StatusOr<Buffer> Allocate(int64_t rows, int64_t cols, ElementType type) override {
    return HostBuffer(rows, cols, type, /*zeroed=*/true);
  }
  int64_t DefaultMemoryBudgetBytes() const override { return int64_t{1} << 30; }
  int64_t PrefillTokenLimit(int64_t) const override { return 0; }

 private:
  std::unique_ptr<ModelWeights> owned_;     // null for a view
  std::vector<std::vector<float>> stacked_;  // the stacked projections' copies, when asked for
  ModelTensors tensors_;
};

absl::StatusOr<std::unique_ptr<Engine>> MakeEngine(std::unique_ptr<ModelWeights> owned, const ModelWeights& weights,
                                                   bool stack_projections) {
  if (weights.storage != WeightStorage::kFloat32) {
    return absl::InvalidArgumentError("the CPU engine needs weights loaded as fp32");
  }
  // Views of the host tensors: the kernels read them through const pointers.
  const TensorPlacer view = [](const HostTensor& host, bool) -> absl::StatusOr<Tensor> {
    Tensor t = ShapeOf(host, ElementType::kF32);
    t.data = const_cast<float*>(host.data);
    return t;
  };
  std::vector<std::vector<float>> stacked;  // moving the outer vector keeps each copy where it is
  const TensorStacker copy = [&stacked](const std::vector<const HostTensor*>& parts,
                                        bool matrix) -> absl::StatusOr<Tensor> {
    Tensor t = StackedShape(parts, matrix, ElementType::kF32);
    std::vector<float>& all = stacked.emplace_back();
    for (const HostTensor* part : parts) all.insert(all.end(), part->data, part->data + part->numel());
    t.data = all.data();
    return t;
  };
  ASSIGN_OR_RETURN(ModelTensors tensors, PlaceModelTensors(weights, view, stack_projections ? copy : nullptr));
  ModelConfig config = weights.config;
  return std::make_unique<Engine>(
      std::move(config), std::make_unique<CpuBackend>(std::move(owned), std::move(stacked), std::move(tensors)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> MakeCpuEngine(std::unique_ptr<ModelWeights> weights) {
  if (weights == nullptr) return absl::InvalidArgumentError("MakeCpuEngine: no weights");
  const ModelWeights& view = *weights;
  return MakeEngine(std::move(weights), view, /*stack_projections=*/false);
}

absl::StatusOr<std::unique_ptr<Engine>> MakeCpuEngineView(const ModelWeights& weights, bool stack_projections) {
  return MakeEngine(nullptr, weights, stack_projections);
}

}  // namespace tessera
