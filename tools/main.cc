// The `tessera` executable: one binary, one subcommand per role.
#include <cstring>
#include <iostream>
#include "absl/strings/string_view.h"

#include "tools/eval_command.h"

namespace {

constexpr absl::string_view kUsage =
    "usage: tessera <command> [flags]\n"
    "\n"
    "commands:\n"
    "  eval       compare the engine with a Hugging Face reference (logits + greedy decode)\n"
    "  version    print the version\n"
    "\n"
    "`tessera <command> --help` lists a command's flags.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const absl::string_view command = argv[1];
  if (command == "eval") return tessera::RunEvalCommand(argc - 1, argv + 1);
  if (command == "version") {
    std::cout << "tessera 0.1.0\n";
    return 0;
  }
  std::cerr << "tessera: unknown command '" << command << "'\n\n" << kUsage;
  return 2;
}
