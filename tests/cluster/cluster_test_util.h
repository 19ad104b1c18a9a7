// Helpers shared by the cluster tests: a free 127.0.0.1 port, whether a pid
// is gone for good (reaped, not a zombie), the children of a process, and
// running a command to completion with its output captured.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace tessera::testing {

// Path of the fake `tessera` built beside the tests (fake_tessera.cc).
inline const char* FakeTesseraBinary() { return TESSERA_FAKE_BINARY; }

// A port that was free on 127.0.0.1 a moment ago (bind to 0, read, close).
int FreeLocalPort();

// kill(pid, 0) fails with ESRCH: no process, not even a zombie.
bool ProcessGone(pid_t pid);

// Polls ProcessGone for up to `timeout` (orphans are reaped by init, later).
bool ProcessGoneWithin(pid_t pid, std::chrono::milliseconds timeout);

// This test process has no children left, running or zombie.
bool NoChildrenLeft();

// Processes whose parent is `pid` (from /proc/*/stat).
std::vector<pid_t> ChildrenOf(pid_t pid);

struct CommandResult {
  int wait_status = -1;  // -1: timed out (then killed)
  std::string stdout_text;
  std::string stderr_text;
  int exit_code() const;  // -1 unless it exited normally
};

// Runs argv (argv[0] a path) to completion, up to `timeout`.
CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// A fresh directory under TEST_TMPDIR or /tmp, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFileOrEmpty(const std::string& path);

}  // namespace tessera::testing
