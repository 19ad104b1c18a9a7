// The served model's description, taken from the same parser the workers use,
// so both sides agree on vocab size, end-of-sequence token and layer count.
#include "coordinator/served_model.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/context_limit.h"
#include "model/model_config.h"

namespace tessera {

absl::StatusOr<ServedModel> LoadServedModel(const std::string& model_dir, int64_t max_context_tokens,
                                            std::string* warning) {
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  RETURN_IF_ERROR(CheckServed(config));  // what the workers would refuse, said at once
  ASSIGN_OR_RETURN(ContextLimit context, ResolveContextLimit(config, max_context_tokens));
  if (warning != nullptr) *warning = context.warning;
  ServedModel model;
  model.model_type = config.model_type;
  model.model_path = model_dir;
  model.vocab_size = config.vocab_size;
  model.num_layers = config.num_layers;
  model.has_attention = config.CountBlocks(BlockKind::kAttention) > 0;
  model.eos_token_id = config.eos_token_id;
  model.max_context_tokens = context.served_tokens;
  model.trained_context_tokens = context.trained_tokens;
  return model;
}

std::string DefaultTokenizerPath(const std::string& model_dir) {
  const std::filesystem::path path = std::filesystem::path(model_dir) / "tokenizer.json";
  std::error_code error;
  return std::filesystem::is_regular_file(path, error) ? path.string() : std::string();
}

absl::Status AttachTokenizer(const std::string& path, ServedModel& model) {
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::FromFile(path));
  if (tokenizer->vocab_size() > model.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer ", path, " has token ids up to ", tokenizer->vocab_size() - 1, " (vocab size ",
        tokenizer->vocab_size(), "), beyond the model's vocab_size ", model.vocab_size, " (", model.model_path, ")"));
  }
  model.tokenizer = std::move(tokenizer);
  model.tokenizer_path = path;
  return absl::OkStatus();
}

}  // namespace tessera
