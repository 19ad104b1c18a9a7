// One child process of a local cluster, owned like a resource: spawned into
// its own process group (so a terminal's Ctrl-C reaches only the launcher,
// which then stops its children in order, and a signal to the group reaches
// anything the child started), with stdin from /dev/null, default signal
// dispositions and an empty mask (the launcher blocks SIGINT/SIGTERM for
// sigwait; children must not inherit that), no inherited descriptors beyond
// stdio, and SIGKILL as parent-death signal so that a launcher killed hard
// leaves no orphans. Exec failures come back as errors, not as a child that
// exits 127 later.
//
// The parent-death signal fires when the *thread* that spawned the child
// exits: spawn from a thread that lives as long as the child (main, in the
// launcher and in tests). Not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera {

struct ChildProcessOptions {
  std::vector<std::string> argv;  // argv[0] is the executable's path (no PATH search)
  int stdout_fd = -1;             // becomes the child's stdout; -1: the parent's
  int stderr_fd = -1;             // becomes the child's stderr; -1: the parent's
};

class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const ChildProcessOptions& options);

  // Kills (SIGKILL to the group) and reaps a child still running.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return !wait_status_.has_value(); }
  // The waitpid status once reaped.
  std::optional<int> wait_status() const { return wait_status_; }

  // Reaps the child if it has exited (killing whatever is left of its group
  // first); returns whether it is still running.
  bool Poll();
  // Sends `signal` to the child's process group; no-op once reaped.
  void SignalGroup(int signal);
  // SIGKILL to the group, then a blocking reap. No-op once reaped.
  void KillAndReap();

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}

  pid_t pid_;
  std::optional<int> wait_status_;
};

// SIGTERM to every running child, up to `grace` for them to exit, then
// SIGKILL; every child is reaped on return.
void StopChildren(const std::vector<ChildProcess*>& children, std::chrono::milliseconds grace);

// "exited with status 1", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

}  // namespace tessera
