// `tessera generate`: the command-line client of the public API. Sends one
// GenerateRequest (a text prompt, or token ids) to a running coordinator
// through GenerateStream, shows prefill progress on stderr, streams the
// generated text (text prompts) or token ids to stdout as they come, and ends
// with a summary on stderr (finish reason, usage, speed).
#pragma once

namespace tessera {

// argv[0] is "generate". Returns the process exit code: 0 on success, 1 when
// the call fails ("tessera generate: CODE: message" on stderr), 2 on a usage
// error.
int RunGenerateCommand(int argc, char** argv);

}  // namespace tessera
