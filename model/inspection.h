// What Tessera sees in a model directory without loading it: the config as
// read, the safetensors headers against the tensors the config implies
// (never the tensor data), the parameter count and bytes per dtype, and the
// K/V and state bytes a token and a request cost. What `tessera inspect`
// prints; the tokenizer is the command's to check (coordinator/tokenizer).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model_config.h"

namespace tessera {

struct WeightsInspection {
  bool present = false;        // a checkpoint was found and its headers read
  bool absent = false;         // no checkpoint file at all (a config-only directory)
  std::string status;          // why not present, or "ok"
  int64_t tensors = 0;         // in the checkpoint
  int64_t parameters = 0;      // elements of every tensor in the checkpoint
  std::map<std::string, int64_t> bytes_by_dtype;  // "BF16" → bytes
  int64_t expected_parameters = 0;  // of the tensors the config implies (unserved layers aside)
  std::vector<std::string> missing;     // expected, not in the checkpoint
  std::vector<std::string> unexpected;  // in the checkpoint, not expected (unserved layers' tensors aside)
  std::vector<std::string> wrong_shape; // "name: expected [a, b], found [c, d]"
  std::vector<std::string> bad_dtype;   // "name: I8" (Tessera loads F32, F16, BF16, F64)
  int64_t unserved_layer_tensors = 0;   // tensors under layers that are not served yet

  bool ok() const { return present && missing.empty() && wrong_shape.empty() && bad_dtype.empty(); }
};

struct Inspection {
  std::string model_dir;
  ModelConfig config;
  WeightsInspection weights;
  int64_t kv_bytes_per_token_bf16 = 0;  // K/V of one token across every attention layer, bf16
  int64_t state_bytes_per_request = 0;  // conv + SSM states of one request, fp32
};

// Reads DIR/config.json (its errors are returned) and the safetensors headers
// (their problems are reported in `weights`, never returned).
absl::StatusOr<Inspection> InspectModel(const std::string& model_dir);

}  // namespace tessera
