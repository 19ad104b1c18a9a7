// Upload in slices of at most kSliceElements, so converting a large
// checkpoint never doubles it in host memory.
#include "worker/cuda/weight_upload.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/safetensors.h"
#include "worker/cuda/cuda_status.h"
#include "worker/model_tensors.h"

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
  std::vector<float> f32(std::min(n, kSliceElements));                     // (slice)
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

}  // namespace

absl::Status WeightUploader::Allocate(Tensor& t) {
  const int64_t bytes = t.rows * t.cols * t.element_bytes();
  void* device = nullptr;
  RETURN_IF_ERROR(CudaStatus("weight upload: cudaMalloc", cudaMalloc(&device, std::max<int64_t>(1, bytes))));
  t.data = device;
  buffers_.emplace_back(t, [](void* p) { cudaFree(p); });
  bytes_ += bytes;
  return absl::OkStatus();
}

absl::StatusOr<Tensor> WeightUploader::Place(const HostTensor& host, bool matrix) {
  const void* source = host.data != nullptr ? static_cast<const void*>(host.data) : host.stored;
  const auto key = std::make_pair(source, matrix);
  if (auto it = placed_.find(key); it != placed_.end()) return it->second;
  Tensor t = ShapeOf(host, matrix ? matrix_type_ : ElementType::kF32);
  RETURN_IF_ERROR(Allocate(t));
  RETURN_IF_ERROR(CopySlices(host, host.numel(), t.type, t.data));
  placed_.emplace(key, t);
  return t;
}

absl::StatusOr<Tensor> WeightUploader::Stack(const std::vector<const HostTensor*>& parts, bool matrix) {
  Tensor t = StackedShape(parts, matrix, matrix ? matrix_type_ : ElementType::kF32);
  RETURN_IF_ERROR(Allocate(t));
  uint8_t* next = static_cast<uint8_t*>(t.data);  // where the next part goes
  for (const HostTensor* part : parts) {
    RETURN_IF_ERROR(CopySlices(*part, part->numel(), t.type, next));
    next += part->numel() * t.element_bytes();
  }
  return t;
}

}  // namespace tessera::cuda_engine
