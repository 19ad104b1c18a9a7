// Where a running request's intermediate events go: GenerateStream writes
// them to its client; Generate ignores them (its tokens come back whole).
#pragma once

#include <string>

#include "coordinator/generate_types.h"

namespace tessera {

class GenerateEvents {
 public:
  virtual ~GenerateEvents() = default;
  // The request was admitted under this id (the caller's, or a generated one).
  virtual void OnStart(const std::string& request_id) {}
  // Each returns false when the client is gone; the request then ends.
  virtual bool OnProgress(const PrefillProgress& progress) = 0;
  virtual bool OnTokens(const TokenDelta& tokens) = 0;
};

// For callers that only want the final result.
class IgnoreGenerateEvents final : public GenerateEvents {
 public:
  bool OnProgress(const PrefillProgress&) override { return true; }
  bool OnTokens(const TokenDelta&) override { return true; }
};

}  // namespace tessera
