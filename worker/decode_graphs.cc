#include "worker/decode_graphs.h"

#include <cstdlib>
#include <cstring>

#include "common/status_macros.h"

namespace tessera {

DecodeGraphs::DecodeGraphs() {
  const char* env = std::getenv("TESSERA_DECODE_GRAPHS");
  enabled_ = env == nullptr || std::strcmp(env, "0") != 0;
}

int64_t DecodeGraphs::BucketRows(int64_t rows) {
  if (rows < 1 || rows > kMaxRows) return 0;
  int64_t bucket = 1;
  while (bucket < rows) bucket *= 2;
  return bucket;
}

int64_t DecodeGraphs::captured() {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t count = 0;
  for (const auto& [rows, bucket] : buckets_) count += bucket->graph != nullptr ? 1 : 0;
  return count;
}

absl::Status DecodeGraphs::first_capture_error() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [rows, bucket] : buckets_) {
    if (!bucket->capture_failed.ok()) return bucket->capture_failed;
  }
  return absl::OkStatus();
}

absl::StatusOr<DecodeGraphs::Bucket*> DecodeGraphs::GetBucket(Backend& backend, const ModelConfig& config,
                                                               int64_t rows) {
  const int64_t bucket_rows = BucketRows(rows);
  if (bucket_rows == 0) return absl::InternalError("no decode graph bucket for this many rows");
  std::unique_ptr<Bucket>& bucket = buckets_[bucket_rows];
  if (bucket == nullptr) {
    auto made = std::make_unique<Bucket>(DecodeStepLayout(config, bucket_rows));
    ASSIGN_OR_RETURN(made->inputs, backend.Allocate(1, 2 * made->layout.words(), ElementType::kF32));
    ASSIGN_OR_RETURN(made->logits, backend.Allocate(bucket_rows, config.vocab_size, ElementType::kF32));
    bucket = std::move(made);
  }
  return bucket.get();
}

absl::StatusOr<ShardState*> DecodeGraphs::Padding(Backend& backend, const ModelConfig& config, OpStream& ops) {
  if (padding_ == nullptr) {
    ASSIGN_OR_RETURN(padding_, ShardState::Make(backend, config, /*begin=*/0, /*capacity_tokens=*/1));
    RETURN_IF_ERROR(padding_->ReserveKv(ops, 1));
  }
  return padding_.get();
}

absl::StatusOr<Tensor> DecodeGraphs::BlasWorkspace(Backend& backend) {
  if (blas_workspace_.view().empty()) {
    ASSIGN_OR_RETURN(blas_workspace_, backend.Allocate(1, kBlasWorkspaceBytes / 4, ElementType::kF32));
  }
  return blas_workspace_.view();
}

}  // namespace tessera
