// `tessera worker`: one worker process serving tessera.v1.Worker.
#pragma once

namespace tessera {

int RunWorkerCommand(int argc, char** argv);

}  // namespace tessera
