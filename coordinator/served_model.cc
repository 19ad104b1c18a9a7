// The served model's description, taken from the same parser the workers use,
// so both sides agree on vocab size, end-of-sequence token and layer count.
#include "coordinator/served_model.h"

#include "common/status_macros.h"
#include "worker/model_config.h"

namespace tessera {

absl::StatusOr<ServedModel> LoadServedModel(const std::string& model_dir) {
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  ServedModel model;
  model.model_type = config.model_type;
  model.model_path = model_dir;
  model.vocab_size = config.vocab_size;
  model.num_layers = config.num_layers;
  model.eos_token_id = config.eos_token_id;
  model.max_position_embeddings = config.max_position_embeddings;
  return model;
}

}  // namespace tessera
