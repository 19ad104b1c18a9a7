// The keys of config.json each family knows, by what Tessera does with them:
// applied (read by the family's parser), knowingly ignored (they do not change
// inference: training, initialization, caching, runtime flags), or refused by
// name when set to something that would change the math Tessera computes.
// A key in none of these lists is reported by `tessera inspect` as unread.
#pragma once

#include "absl/types/span.h"
#include "model/model_config.h"

namespace tessera {

struct RefusedKey {
  const char* key;
  const char* allowed_json;  // the value Tessera computes with (absent and null are fine too)
  const char* example_json;  // a value transformers acts on and Tessera refuses (for tests)
  const char* why;           // the end of the error message
};

// Keys ignored for every family (what transformers' PretrainedConfig holds).
absl::Span<const char* const> CommonIgnoredConfigKeys();
absl::Span<const char* const> IgnoredConfigKeys(ModelFamily family, WeightNaming naming);
absl::Span<const RefusedKey> RefusedConfigKeys(ModelFamily family, WeightNaming naming);

}  // namespace tessera
