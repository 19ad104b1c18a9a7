// Token embedding gather for a table stored as fp32 or bf16, widened to fp32:
// one block row per token, threads across hidden, so no per-element division
// and coalesced rows. The ids are device memory: the entry point runs the
// shared checks (kernels/embedding.cc), copies the ids back and checks every
// one against the vocabulary (so it synchronizes the stream, and a bad id
// leaves out untouched), then launches for the table's type.
#include "kernels/embedding.h"

#include <cuda_bf16.h>

#include <vector>

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::RowGrid;
using cuda_launch::ToFloat;

constexpr int kThreads = 256;

template <typename T>
__global__ void EmbeddingKernel(EmbeddingParams p, const T* table) {
  cuda_launch::GridDependencyWait();  // first: see cuda_util.cuh
  for (int64_t t = blockIdx.y; t < p.num_tokens; t += gridDim.y) {
    const T* row = table + static_cast<int64_t>(p.ids[t]) * p.hidden;  // (hidden)
    float* out = p.out + t * p.hidden;                                 // (hidden)
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < p.hidden;
         c += int64_t{gridDim.x} * blockDim.x) {
      out[c] = ToFloat(row[c]);
    }
  }
}

template <typename T>
cudaError_t LaunchEmbedding(const EmbeddingParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  return cuda_launch::LaunchAfterPrior(EmbeddingKernel<T>, RowGrid(p.num_tokens, p.hidden, kThreads), kThreads, 0,
                                       stream, p, static_cast<const T*>(p.table));
}

// Copies p.ids (num_tokens device int32) back and checks every id against the
// vocabulary (CheckEmbeddingTokenIds); synchronizes `stream`.
absl::Status CheckDeviceTokenIds(absl::string_view op, const EmbeddingParams& p,
                                 cudaStream_t stream) {
  std::vector<int32_t> ids(p.num_tokens);  // (num_tokens)
  RETURN_IF_ERROR(FromCuda(op, cudaMemcpyAsync(ids.data(), p.ids, sizeof(int32_t) * ids.size(),
                                               cudaMemcpyDeviceToHost, stream)));
  RETURN_IF_ERROR(FromCuda(op, cudaStreamSynchronize(stream)));
  return CheckEmbeddingTokenIds(ids.data(), p.num_tokens, p.vocab_size);
}

}  // namespace

absl::Status Embedding(const EmbeddingParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Embedding";
  RETURN_IF_ERROR(CheckEmbeddingParams(p));
  if (p.num_tokens == 0) return absl::OkStatus();
  if (!p.ids_checked) RETURN_IF_ERROR(CheckDeviceTokenIds(kOp, p, stream));
  switch (p.table_type) {
    case ElementType::kF32:
      return FromCuda(kOp, LaunchEmbedding<float>(p, stream));
    case ElementType::kBF16:
      return FromCuda(kOp, LaunchEmbedding<__nv_bfloat16>(p, stream));
  }
  return absl::InternalError("Embedding: unhandled table_type");  // rejected by the checks
}

}  // namespace tessera::cuda
