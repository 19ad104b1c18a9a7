// A served cluster as a GreedyRunner: one Generate call with greedy sampling,
// return_logits and ignore_eos, so `tessera eval --workers N` and the
// end-to-end tests compare exactly what a client receives.
#pragma once

#include <string>

#include "tools/reference_eval.h"

namespace tessera {

GreedyRunner MakeGrpcGreedyRunner(const std::string& server_address);

}  // namespace tessera
