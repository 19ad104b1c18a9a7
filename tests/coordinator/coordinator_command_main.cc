// `tessera coordinator` alone (argv[0] stands for the subcommand name), for coordinator_command_test (the real
// executable is wired in tools/main.cc).
#include "tools/coordinator_command.h"

int main(int argc, char** argv) { return tessera::RunCoordinatorCommand(argc, argv); }
