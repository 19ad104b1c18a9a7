// A served cluster as a GreedyRunner: one Generate call with greedy sampling,
// return_logits and ignore_eos, so `tessera eval --workers N` and the
// end-to-end tests compare exactly what a client receives.
#pragma once

#include <string>

#include "rpc/grpc_security.h"
#include "tools/reference_eval.h"

namespace tessera {

// `security`: how to reach the server (a LocalCluster's client_security()).
GreedyRunner MakeGrpcGreedyRunner(const std::string& server_address, const ChannelSecurity& security);

}  // namespace tessera
