// Stand-in for the `tessera` binary's dispatch, so tokenize_cli_test.sh can
// exercise `tessera tokenize` through real stdin/stdout.
#include "tools/tokenize_command.h"

int main(int argc, char** argv) { return tessera::RunTokenizeCommand(argc - 1, argv + 1); }
