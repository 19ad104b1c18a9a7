// The public API's messages (tessera/v1/tessera.proto) to and from the
// coordinator's own types (coordinator/generate_types.h), field for field.
// Presence is kept where the wire has it: logits travel only when present.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/generate_types.h"
#include "tessera/v1/tessera.pb.h"

namespace tessera {

GenerateRequest FromProto(const v1::GenerateRequest& request);
TokenizeRequest FromProto(const v1::TokenizeRequest& request);
DetokenizeRequest FromProto(const v1::DetokenizeRequest& request);

v1::GenerateResponse ToProto(const GenerateResult& result);
v1::PrefillProgress ToProto(const PrefillProgress& progress);
v1::TokenDelta ToProto(const TokenDelta& delta);
v1::ModelInfo ToProto(const ModelInfo& info);
v1::ServerInfo ToProto(const ServerInfo& info);
v1::TokenizeResponse ToTokenizeResponse(const std::vector<int32_t>& token_ids);
v1::DetokenizeResponse ToDetokenizeResponse(std::string text);

// A stream's last message: the result without what the deltas already
// carried (token ids, their logits, the text).
v1::GenerateStreamResponse ToStreamFinished(GenerateResult result);

}  // namespace tessera
