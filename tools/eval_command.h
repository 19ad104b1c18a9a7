// `tessera eval`: compare the engine against a Hugging Face reference file.
#pragma once

namespace tessera {

int RunEvalCommand(int argc, char** argv);

}  // namespace tessera
