// The `tessera` executable: one binary, one subcommand per role. The
// coordinator is the exception: its own executable, tessera-coordinator, which
// links no kernels, BLAS or CUDA; `tessera coordinator` execs it.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/string_view.h"
#include "tools/tokenize_command.h"
#include "tools/cluster/generate_command.h"
#include "tools/cluster/local_command.h"
#include "tools/compare_command.h"
#include "tools/eval_command.h"
#include "tools/inspect_command.h"
#include "tools/random_model_command.h"
#include "tools/worker_command.h"

namespace {

constexpr char kCoordinatorExecutable[] = "tessera-coordinator";

// `tessera coordinator ARGS...` becomes `tessera-coordinator ARGS...` from
// this executable's directory, in this process (same pid, signals, stdin and
// stdout), so whoever started `tessera coordinator` (a user, `tessera local`,
// a container) still has the coordinator as its child. Returns only on failure.
int ExecCoordinator(int argc, char** argv) {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  std::string path =
      error ? std::string(kCoordinatorExecutable) : (self.parent_path() / kCoordinatorExecutable).string();
  std::vector<char*> args = {path.data()};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv(path.c_str(), args.data());
  const int failure = errno;
  std::cerr << "tessera coordinator: cannot run " << path << ": " << std::strerror(failure)
            << " (the coordinator is its own executable, installed next to tessera; build it with the target "
            << kCoordinatorExecutable << ")\n";
  return failure == ENOENT ? 127 : 126;
}

struct Command {
  absl::string_view name;
  int (*run)(int argc, char** argv);
  absl::string_view help;
};

constexpr Command kCommands[] = {
    {"local", tessera::RunLocalCommand, "start a coordinator and N workers on 127.0.0.1 (Ctrl-C stops them)"},
    {"generate", tessera::RunGenerateCommand, "send a prompt to a server and stream the tokens back"},
    {"coordinator", ExecCoordinator, "serve the public API and plan shards over workers"},
    {"worker", tessera::RunWorkerCommand, "serve one worker (model weights, K/V, peer exchange)"},
    {"eval", tessera::RunEvalCommand, "compare logits and greedy tokens with a Hugging Face reference"},
    {"inspect", tessera::RunInspectCommand, "print what Tessera will run for a model directory (exit 2: it cannot)"},
    {"tokenize", tessera::RunTokenizeCommand, "encode standard input with a tokenizer.json (or --decode ids)"},
    {"make-random-model", tessera::RunMakeRandomModelCommand, "write a nemotron_h checkpoint of random weights"},
    {"compare", tessera::RunCompareCommand, "one random prompt on two local clusters (1 vs 2 workers)"},
};

void PrintUsage(std::ostream& out) {
  out << "usage: tessera <command> [flags]\n\ncommands:\n";
  for (const Command& c : kCommands) out << "  " << c.name << std::string(19 - c.name.size(), ' ') << c.help << "\n";
  out << "  version            print the version\n\n`tessera <command> --help` lists a command's flags.\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    PrintUsage(std::cout);
    return argc < 2 ? 2 : 0;
  }
  const absl::string_view name = argv[1];
  if (name == "version" || name == "--version") {
    std::cout << "tessera 0.1.0\n";
    return 0;
  }
  for (const Command& c : kCommands) {
    if (c.name == name) return c.run(argc - 1, argv + 1);
  }
  std::cerr << "tessera: unknown command '" << name << "'\n\n";
  PrintUsage(std::cerr);
  return 2;
}
