// Generate(return_logits) → prompt logits, tokens and per-token logits.
#include "tools/grpc_greedy_runner.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/tessera.grpc.pb.h"

namespace tessera {

GreedyRunner MakeGrpcGreedyRunner(const std::string& server_address, const ChannelSecurity& security) {
  std::shared_ptr<tessera::v1::Tessera::Stub> stub =
      tessera::v1::Tessera::NewStub(MakeChannel(server_address, security));
  return [stub](absl::Span<const int32_t> prompt, int steps) -> absl::StatusOr<GreedyRun> {
    tessera::v1::GenerateRequest request;
    request.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
    request.mutable_stopping()->set_max_new_tokens(steps);
    request.mutable_stopping()->set_ignore_eos(true);
    request.set_return_logits(true);
    request.set_bypass_prefix_cache(true);  // every prompt row's logits, against a reference
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
    tessera::v1::GenerateResponse response;
    const grpc::Status status = stub->Generate(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    GreedyRun run;
    run.prompt_logits.assign(response.prompt_logits().values().begin(), response.prompt_logits().values().end());
    run.tokens.assign(response.token_ids().begin(), response.token_ids().end());
    run.step_logits.assign(response.token_logits().values().begin(), response.token_logits().values().end());
    return run;
  };
}

}  // namespace tessera
