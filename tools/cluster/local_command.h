// `tessera local`: a whole cluster on this machine, for trying Tessera and for
// development: a coordinator on 127.0.0.1:PORT and N workers, all children of
// this process, stopped cleanly on SIGINT/SIGTERM.
#pragma once

namespace tessera {

// argv[0] is "local". Returns the process exit code: 0 after a clean stop on
// a signal, 1 when the cluster cannot start or its coordinator dies, 2 on a
// usage error.
int RunLocalCommand(int argc, char** argv);

}  // namespace tessera
