// tessera-coordinator: the coordinator as its own executable, so the process
// that serves clients links the coordinator side only (no kernels, BLAS or
// CUDA). Takes the flags of `tessera coordinator`, which execs this binary.
#include "tools/coordinator_command.h"

int main(int argc, char** argv) { return tessera::RunCoordinatorCommand(argc, argv); }
