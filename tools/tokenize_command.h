// `tessera tokenize`: encode standard input to token ids (a JSON array on one
// line) or, with --decode, a JSON array of ids back to text, with a
// tokenizer.json. For checking the tokenizer by hand and from scripts. Its
// defaults are the API's: no template tokens added (--add-special-tokens adds
// them), special tokens left out of decoded text (--keep-special-tokens).
#pragma once

namespace tessera {

// argv[0] is "tokenize". Returns the process exit code: 0 on success, 1 on a
// failure (message on stderr), 2 on a usage error.
int RunTokenizeCommand(int argc, char** argv);

}  // namespace tessera
