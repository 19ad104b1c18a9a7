// What the coordinator knows about the served model. It reads config.json
// only: weights live on the workers, but the coordinator must validate token
// ids against the vocabulary and lengths against the position limit before a
// request reaches any worker.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tessera {

struct ServedModel {
  std::string model_type;
  std::string model_path;
  int64_t vocab_size = 0;
  int64_t num_layers = 0;
  int64_t eos_token_id = -1;            // -1: the model has none
  int64_t max_position_embeddings = 0;  // 0: unbounded
};

// Reads MODEL_DIR/config.json.
absl::StatusOr<ServedModel> LoadServedModel(const std::string& model_dir);

}  // namespace tessera
