// `tessera coordinator`: the process clients and workers talk to.
#pragma once

namespace tessera {

// argv[0] is "coordinator". Returns the process exit code.
int RunCoordinatorCommand(int argc, char** argv);

}  // namespace tessera
