// `tessera coordinator`: the process clients and workers talk to. It runs as
// its own executable, tessera-coordinator (coordinator_main.cc), which links
// the coordinator side only: no kernels, BLAS or CUDA. `tessera coordinator`
// execs it (main.cc).
#pragma once

namespace tessera {

// argv[0] is "coordinator" (or the executable's path). Returns the process exit code.
int RunCoordinatorCommand(int argc, char** argv);

}  // namespace tessera
