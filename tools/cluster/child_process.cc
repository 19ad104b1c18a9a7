// fork + exec rather than posix_spawn, for the parent-death signal (prctl).
// Everything the child touches is prepared before fork(): between fork and
// exec a threaded parent's child may only make async-signal-safe calls. Exec
// errors travel back through a close-on-exec pipe (EOF: exec succeeded).
#include "tools/cluster/child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"

namespace tessera {
namespace {

// Only async-signal-safe calls from here to execv.
[[noreturn]] void RunChild(char* const* argv, pid_t parent, int dev_null_fd, int stdout_fd, int stderr_fd,
                           int exec_error_fd, int max_fd) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);  // the parent died before prctl
  struct sigaction default_action = {};
  default_action.sa_handler = SIG_DFL;
  for (int signal = 1; signal < NSIG; ++signal) sigaction(signal, &default_action, nullptr);
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);

  if (dup2(dev_null_fd, 0) < 0) _exit(127);
  if (stdout_fd >= 0 && dup2(stdout_fd, 1) < 0) _exit(127);
  if (stderr_fd >= 0 && dup2(stderr_fd, 2) < 0) _exit(127);
  // Keep the exec-error pipe as fd 3 (close-on-exec) and close the rest.
  if (exec_error_fd != 3 && dup2(exec_error_fd, 3) < 0) _exit(127);
  fcntl(3, F_SETFD, FD_CLOEXEC);
  if (close_range(4, ~0U, 0) != 0) {
    for (int fd = 4; fd < max_fd; ++fd) close(fd);
  }
  execv(argv[0], argv);
  const int exec_errno = errno;
  [[maybe_unused]] ssize_t ignored = write(3, &exec_errno, sizeof(exec_errno));
  _exit(127);
}

int MaxFdForClosing() {
  struct rlimit limit = {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 65536;
  return static_cast<int>(std::min<rlim_t>(limit.rlim_cur, 1 << 20));
}

int WaitForPid(pid_t pid, int flags, int* status) {
  int result;
  do {
    result = waitpid(pid, status, flags);
  } while (result < 0 && errno == EINTR);
  return result;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(const ChildProcessOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("no command to run");
  const std::string& binary = options.argv[0];
  std::vector<std::string> argv_storage = options.argv;
  std::vector<char*> argv;  // (argc + 1,) NULL-terminated
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);

  const int dev_null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (dev_null_fd < 0) return absl::InternalError(absl::StrCat("cannot open /dev/null: ", strerror(errno)));
  int exec_error_pipe[2];
  if (pipe2(exec_error_pipe, O_CLOEXEC) != 0) {
    close(dev_null_fd);
    return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  const int max_fd = MaxFdForClosing();
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid == 0) {
    RunChild(argv.data(), parent, dev_null_fd, options.stdout_fd, options.stderr_fd, exec_error_pipe[1], max_fd);
  }
  const int fork_errno = errno;
  close(dev_null_fd);
  close(exec_error_pipe[1]);
  if (pid < 0) {
    close(exec_error_pipe[0]);
    return absl::ResourceExhaustedError(absl::StrCat("cannot fork to run ", binary, ": ", strerror(fork_errno)));
  }
  setpgid(pid, pid);  // also here, so that the group exists before we signal it; EACCES after exec is fine

  int exec_errno = 0;
  ssize_t got;
  do {
    got = read(exec_error_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (got < 0 && errno == EINTR);
  close(exec_error_pipe[0]);
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess(pid));
  if (got != 0) {
    child->KillAndReap();
    if (got != static_cast<ssize_t>(sizeof(exec_errno))) {
      return absl::InternalError(absl::StrCat("cannot start ", binary, ": the child failed before exec"));
    }
    const std::string reason = strerror(exec_errno);
    if (exec_errno == ENOENT) return absl::NotFoundError(absl::StrCat("cannot run ", binary, ": ", reason));
    return absl::FailedPreconditionError(absl::StrCat("cannot run ", binary, ": ", reason));
  }
  return child;
}

ChildProcess::~ChildProcess() { KillAndReap(); }

bool ChildProcess::Poll() {
  if (!running()) return false;
  siginfo_t info = {};
  // WNOWAIT: look without reaping, so that the pid (and group id) stays ours
  // while the group's leftovers are killed.
  int result;
  do {
    result = waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT);
  } while (result < 0 && errno == EINTR);
  if (result == 0 && info.si_pid == 0) return true;
  if (result == 0) kill(-pid_, SIGKILL);
  int status = 0;
  if (WaitForPid(pid_, 0, &status) == pid_) {
    wait_status_ = status;
  } else {
    wait_status_ = 0;  // ECHILD: reaped elsewhere (SIGCHLD ignored); nothing left to wait for
  }
  return false;
}

void ChildProcess::SignalGroup(int signal) {
  if (running()) kill(-pid_, signal);
}

void ChildProcess::KillAndReap() {
  if (!running()) return;
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);  // in case the child had not yet made its group
  int status = 0;
  wait_status_ = WaitForPid(pid_, 0, &status) == pid_ ? status : 0;
}

void StopChildren(const std::vector<ChildProcess*>& children, std::chrono::milliseconds grace) {
  for (ChildProcess* child : children) child->SignalGroup(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (true) {
    bool any_running = false;
    for (ChildProcess* child : children) any_running |= child->Poll();
    if (!any_running || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (ChildProcess* child : children) child->KillAndReap();
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(wait_status), " (", strsignal(WTERMSIG(wait_status)), ")");
  }
  return absl::StrCat("ended with wait status ", wait_status);
}

}  // namespace tessera
