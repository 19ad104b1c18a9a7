// What the coordinator knows about the served model. It reads config.json
// and, optionally, tokenizer.json; weights live on the workers, but the
// coordinator must validate token ids against the vocabulary and lengths
// against the position limit before a request reaches any worker, and it is
// the one place where text becomes tokens and tokens text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace tessera {

struct ServedModel {
  std::string model_type;
  std::string model_path;
  int64_t vocab_size = 0;
  int64_t num_layers = 0;
  bool has_attention = true;  // false: Mamba layers alone, where a zigzag split balances nothing
  int64_t eos_token_id = -1;            // -1: the model has none
  int64_t max_context_tokens = 0;      // served prompt + generation limit (ResolveContextLimit); 0: none
  int64_t trained_context_tokens = 0;  // the checkpoint's max_position_embeddings; 0: not stated
  std::shared_ptr<const Tokenizer> tokenizer;  // null: token ids in and out only
  std::string tokenizer_path;
};

// Reads MODEL_DIR/config.json; `max_context_tokens` is --max-context-tokens
// (0: the checkpoint's own). `warning` (optional) receives the warning of
// serving past the trained context, if any.
absl::StatusOr<ServedModel> LoadServedModel(const std::string& model_dir, int64_t max_context_tokens = 0,
                                            std::string* warning = nullptr);

// MODEL_DIR/tokenizer.json when that file exists, else empty.
std::string DefaultTokenizerPath(const std::string& model_dir);

// Loads `path` as the model's tokenizer. INVALID_ARGUMENT when some token id
// of the tokenizer is outside the model's vocabulary (the message names both
// sizes): the model could never read such a token.
absl::Status AttachTokenizer(const std::string& path, ServedModel& model);

}  // namespace tessera
