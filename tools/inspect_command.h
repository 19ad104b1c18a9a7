// `tessera inspect`: what Tessera sees in a model directory (see inspect_command.cc).
#pragma once

namespace tessera {

int RunInspectCommand(int argc, char** argv);

}  // namespace tessera
