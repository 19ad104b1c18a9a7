// Upload in slices of at most kSliceElements, so converting a large
// checkpoint never doubles it in host memory.
#include "worker/cuda/device_weights.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "common/status_macros.h"

namespace tessera::cuda_engine {
namespace {

constexpr int64_t kSliceElements = int64_t{1} << 22;

uint16_t FloatToBf16(float f) {  // round to nearest even; NaN stays NaN
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// The tensor's elements from the host: either fp32 data or as-stored bytes.
struct HostSource {
  const float* f32 = nullptr;
  const uint8_t* stored = nullptr;
  DType dtype = DType::kF32;
};

HostSource SourceOf(const HostTensor& t) {
  if (t.data != nullptr) return {t.data, nullptr, DType::kF32};
  return {nullptr, t.stored, t.stored_dtype};
}

absl::Status CopySlices(const HostTensor& t, int64_t n, ElementType type, void* device) {
  const HostSource src = SourceOf(t);
  const int64_t out_bytes = ElementBytes(type);
  // Stored bytes already in the target type go straight to the device.
  const bool as_is = (type == ElementType::kBF16 && src.stored != nullptr && src.dtype == DType::kBF16) ||
                     (type == ElementType::kF32 && (src.f32 != nullptr || src.dtype == DType::kF32));
  if (as_is) {
    const void* host = src.f32 != nullptr ? static_cast<const void*>(src.f32) : src.stored;
    return CudaStatus("weight upload", cudaMemcpy(device, host, n * out_bytes, cudaMemcpyHostToDevice));
  }
  std::vector<float> f32(std::min(n, kSliceElements));  // (slice)
  std::vector<uint16_t> bf16(type == ElementType::kBF16 ? f32.size() : 0);  // (slice)
  for (int64_t begin = 0; begin < n; begin += kSliceElements) {
    const int64_t count = std::min(kSliceElements, n - begin);
    if (src.f32 != nullptr) {
      std::memcpy(f32.data(), src.f32 + begin, count * sizeof(float));
    } else if (!ConvertToFloat32(src.stored + begin * DTypeSize(src.dtype), src.dtype, count, f32.data())) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights stored as ", std::string(DTypeName(src.dtype)), " cannot be uploaded"));
    }
    const void* host = f32.data();
    if (type == ElementType::kBF16) {
      for (int64_t i = 0; i < count; ++i) bf16[i] = FloatToBf16(f32[i]);
      host = bf16.data();
    }
    RETURN_IF_ERROR(CudaStatus("weight upload", cudaMemcpy(static_cast<uint8_t*>(device) + begin * out_bytes, host,
                                                           count * out_bytes, cudaMemcpyHostToDevice)));
  }
  return absl::OkStatus();
}

class Uploader {
 public:
  explicit Uploader(ElementType type) : type_(type) {}

  absl::StatusOr<DeviceMatrix> Matrix(const HostTensor& t) {
    DeviceMatrix m;
    if (t.shape.empty()) return m;  // absent (e.g. gate_proj without SwiGLU)
    m.type = type_;
    m.rows = t.shape[0];
    m.cols = t.numel() / std::max<int64_t>(1, m.rows);
    ASSIGN_OR_RETURN(m.buffer, DeviceBuffer::Allocate(t.numel() * ElementBytes(type_)));
    RETURN_IF_ERROR(CopySlices(t, t.numel(), type_, m.buffer.get()));
    bytes_ += static_cast<int64_t>(m.buffer.bytes());
    return m;
  }

  absl::StatusOr<DeviceVector> Vector(const HostTensor& t) {
    DeviceVector v;
    if (t.numel() == 0 || (t.data == nullptr && t.stored == nullptr)) return v;
    v.size = t.numel();
    ASSIGN_OR_RETURN(v.buffer, DeviceBuffer::Allocate(v.size * sizeof(float)));
    RETURN_IF_ERROR(CopySlices(t, v.size, ElementType::kF32, v.buffer.get()));
    bytes_ += static_cast<int64_t>(v.buffer.bytes());
    return v;
  }

  absl::StatusOr<DeviceVector> Vector(const std::vector<float>& values) {
    HostTensor t;
    t.shape = {static_cast<int64_t>(values.size())};
    t.data = values.data();
    return Vector(t);
  }

  int64_t bytes() const { return bytes_; }

 private:
  ElementType type_;
  int64_t bytes_ = 0;
};

absl::StatusOr<DeviceMamba> UploadMamba(Uploader& up, const MambaWeights& w) {
  DeviceMamba d;
  ASSIGN_OR_RETURN(d.in_proj, up.Matrix(w.in_proj));
  ASSIGN_OR_RETURN(d.out_proj, up.Matrix(w.out_proj));
  ASSIGN_OR_RETURN(d.in_proj_bias, up.Vector(w.in_proj_bias));
  ASSIGN_OR_RETURN(d.out_proj_bias, up.Vector(w.out_proj_bias));
  ASSIGN_OR_RETURN(d.conv_weight, up.Vector(w.conv_weight));
  ASSIGN_OR_RETURN(d.conv_bias, up.Vector(w.conv_bias));
  ASSIGN_OR_RETURN(d.dt_bias, up.Vector(w.dt_bias));
  ASSIGN_OR_RETURN(d.A, up.Vector(w.A));
  ASSIGN_OR_RETURN(d.D, up.Vector(w.D));
  ASSIGN_OR_RETURN(d.norm, up.Vector(w.norm));
  return d;
}

absl::StatusOr<DeviceAttention> UploadAttention(Uploader& up, const AttentionWeights& w) {
  DeviceAttention d;
  ASSIGN_OR_RETURN(d.q_proj, up.Matrix(w.q_proj));
  ASSIGN_OR_RETURN(d.k_proj, up.Matrix(w.k_proj));
  ASSIGN_OR_RETURN(d.v_proj, up.Matrix(w.v_proj));
  ASSIGN_OR_RETURN(d.o_proj, up.Matrix(w.o_proj));
  ASSIGN_OR_RETURN(d.q_bias, up.Vector(w.q_bias));
  ASSIGN_OR_RETURN(d.k_bias, up.Vector(w.k_bias));
  ASSIGN_OR_RETURN(d.v_bias, up.Vector(w.v_bias));
  ASSIGN_OR_RETURN(d.o_bias, up.Vector(w.o_bias));
  return d;
}

absl::StatusOr<DeviceMlp> UploadMlp(Uploader& up, const MlpWeights& w) {
  DeviceMlp d;
  ASSIGN_OR_RETURN(d.gate_proj, up.Matrix(w.gate_proj));
  ASSIGN_OR_RETURN(d.up_proj, up.Matrix(w.up_proj));
  ASSIGN_OR_RETURN(d.down_proj, up.Matrix(w.down_proj));
  ASSIGN_OR_RETURN(d.gate_bias, up.Vector(w.gate_bias));
  ASSIGN_OR_RETURN(d.up_bias, up.Vector(w.up_bias));
  ASSIGN_OR_RETURN(d.down_bias, up.Vector(w.down_bias));
  return d;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceWeights>> UploadWeights(const ModelWeights& weights, ElementType type,
                                                             int device) {
  RETURN_IF_ERROR(CudaStatus(absl::StrCat("cudaSetDevice(", device, ")"), cudaSetDevice(device)));
  auto d = std::make_unique<DeviceWeights>();
  d->config = weights.config;
  d->type = type;
  d->device = device;
  Uploader up(type);
  ASSIGN_OR_RETURN(d->embedding, up.Matrix(weights.embedding));
  ASSIGN_OR_RETURN(d->lm_head, up.Matrix(weights.lm_head));
  ASSIGN_OR_RETURN(d->final_norm, up.Vector(weights.final_norm));
  for (const BlockWeights& b : weights.blocks) {
    DeviceBlock block;
    block.spec = b.spec;
    block.state_slot = b.state_slot;
    ASSIGN_OR_RETURN(block.norm, up.Vector(b.norm));
    if (const auto* m = std::get_if<MambaWeights>(&b.op)) {
      ASSIGN_OR_RETURN(block.op, UploadMamba(up, *m));
    } else if (const auto* a = std::get_if<AttentionWeights>(&b.op)) {
      ASSIGN_OR_RETURN(block.op, UploadAttention(up, *a));
    } else {
      ASSIGN_OR_RETURN(block.op, UploadMlp(up, std::get<MlpWeights>(b.op)));
    }
    d->blocks.push_back(std::move(block));
  }
  d->bytes = up.bytes();
  return d;
}

}  // namespace tessera::cuda_engine
