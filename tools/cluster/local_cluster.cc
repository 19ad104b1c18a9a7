// Readiness is judged by the coordinator (GetModelInfo.workers_ready), the
// one place that knows whether a worker registered and passed its checks;
// liveness by waitpid, so that a child that dies during start fails Start at
// once with its exit status instead of after the whole timeout.
#include "tools/cluster/local_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "rpc/grpc_security.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/tessera.grpc.pb.h"

namespace tessera {
namespace {

constexpr absl::string_view kListeningPrefix = "coordinator listening on ";
constexpr absl::string_view kInternalPrefix = "coordinator internal API on ";
constexpr absl::string_view kHttpPrefix = "coordinator http on ";  // then HOST:PORT and a note
constexpr auto kPollInterval = std::chrono::milliseconds(50);

void WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t written = write(fd, data.data(), data.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;  // the log is gone; dropping output beats blocking the child
    data.remove_prefix(static_cast<size_t>(written));
  }
}

std::string Seconds(std::chrono::steady_clock::duration duration) {
  return absl::StrCat(std::chrono::duration_cast<std::chrono::milliseconds>(duration).count() / 1000.0, " s");
}

// The flags that set how a role talks; `coordinator` adds the tokens.
absl::StatusOr<std::vector<std::string>> SecurityFlags(const LocalClusterSecurity& security, bool coordinator) {
  if (security.insecure) return std::vector<std::string>{"--insecure"};
  if (security.cert_path.empty() || security.key_path.empty() || security.ca_path.empty() ||
      security.tokens_path.empty() || security.client_token.empty()) {
    return absl::InvalidArgumentError(
        "a TLS cluster needs a certificate, its key, the CA, a tokens file and the launcher's token");
  }
  std::vector<std::string> flags = {"--tls-cert", security.cert_path, "--tls-key", security.key_path,
                                    "--tls-ca",   security.ca_path};
  if (coordinator) flags.insert(flags.end(), {"--auth-tokens-file", security.tokens_path});
  return flags;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(const LocalClusterOptions& options) {
  auto cluster = std::unique_ptr<LocalCluster>(new LocalCluster(options));
  if (absl::Status status = cluster->StartAll(); !status.ok()) {
    cluster->Stop();
    return status;
  }
  return cluster;
}

LocalCluster::~LocalCluster() {
  Stop();
  if (owns_log_fd_) close(log_fd_);
}

absl::Status LocalCluster::StartAll() {
  const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  if (options_.workers < 0) {
    return absl::InvalidArgumentError(absl::StrCat("workers must be >= 0. Given: ", options_.workers));
  }
  if (options_.binary.empty()) return absl::InvalidArgumentError("no tessera binary given");
  if (access(options_.binary.c_str(), X_OK) != 0) {
    const int access_errno = errno;
    const std::string message =
        absl::StrCat("tessera binary ", options_.binary, " is not an executable file: ", strerror(access_errno));
    return access_errno == ENOENT ? absl::NotFoundError(message) : absl::FailedPreconditionError(message);
  }
  if (!options_.log_path.empty()) {
    log_fd_ = open(options_.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd_ < 0) {
      log_fd_ = 2;
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open log file ", options_.log_path, ": ", strerror(errno)));
    }
    owns_log_fd_ = true;
  }
  RETURN_IF_ERROR(StartCoordinator(deadline));
  workers_.resize(options_.workers);
  for (int i = 0; i < options_.workers; ++i) RETURN_IF_ERROR(SpawnWorker(i));
  const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return WaitForWorkersReady(options_.workers, std::max(remaining, std::chrono::milliseconds(0)));
}

absl::Status LocalCluster::StartCoordinator(std::chrono::steady_clock::time_point deadline) {
  int stdout_pipe[2];
  if (pipe2(stdout_pipe, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  ASSIGN_OR_RETURN(const std::vector<std::string> security_flags, SecurityFlags(options_.security, true));
  std::vector<std::string> argv = {options_.binary, "coordinator", "--listen",
                                   absl::StrCat("127.0.0.1:", options_.coordinator_port), "--model",
                                   options_.model_dir};
  argv.insert(argv.end(), security_flags.begin(), security_flags.end());
  argv.insert(argv.end(), options_.coordinator_flags.begin(), options_.coordinator_flags.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn({.argv = argv, .stdout_fd = stdout_pipe[1], .stderr_fd = log_fd_});
  close(stdout_pipe[1]);
  if (!child.ok()) {
    close(stdout_pipe[0]);
    return child.status();
  }
  coordinator_.process = *std::move(child);
  stdout_reader_ = std::thread([this, read_fd = stdout_pipe[0]] { ForwardCoordinatorStdout(read_fd); });

  // Wait for the address line, the coordinator's stdout closing, or the deadline.
  const auto line_or_eof = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return listening_address_.has_value() || stdout_closed_;
  };
  while (true) {
    bool stdout_closed = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&line_or_eof), absl::FromChrono(kPollInterval));
      if (listening_address_.has_value()) {
        address_ = *listening_address_;
        internal_address_ = internal_listening_address_.value_or(address_);
        http_address_ = http_listening_address_.value_or("");
        break;
      }
      stdout_closed = stdout_closed_;
    }
    // Stdout closed without the line: the coordinator is exiting; give it a
    // moment so that the error can say how it ended.
    for (int i = 0; stdout_closed && i < 20 && coordinator_.process->Poll(); ++i) {
      std::this_thread::sleep_for(kPollInterval);
    }
    if (!coordinator_.process->Poll()) {
      coordinator_.exit_reported = true;
      return absl::UnavailableError(absl::StrCat(
          "the coordinator ", DescribeWaitStatus(*coordinator_.process->wait_status()), " before printing '",
          kListeningPrefix, "ADDRESS' (its stderr is ", options_.log_path.empty() ? "above" : options_.log_path, ")"));
    }
    if (stdout_closed) {
      return absl::UnavailableError(
          absl::StrCat("the coordinator closed its stdout without printing '", kListeningPrefix, "ADDRESS'"));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("the coordinator printed no '", kListeningPrefix,
                                                      "ADDRESS' line within ", Seconds(options_.ready_timeout)));
    }
    RETURN_IF_ERROR(CheckCancelled());
  }
  if (!options_.security.insecure) {
    ASSIGN_OR_RETURN(client_security_.root_ca_pem, ReadPemFile(options_.security.ca_path, "the cluster CA"));
    client_security_.insecure = false;
    client_security_.bearer_token = options_.security.client_token;
  }
  channel_ = MakeChannel(address_, client_security_);
  return absl::OkStatus();
}

void LocalCluster::ForwardCoordinatorStdout(int read_fd) {
  constexpr size_t kMaxLineBytes = 1 << 16;
  std::string pending;
  char buffer[4096];
  bool address_found = false;
  const auto take_line = [&](absl::string_view line) {
    if (!address_found && absl::StartsWith(line, kInternalPrefix)) {
      absl::string_view address = absl::StripAsciiWhitespace(absl::StripPrefix(line, kInternalPrefix));
      absl::MutexLock lock(&mu_);
      internal_listening_address_ = std::string(address);
      return;
    }
    if (!address_found && absl::StartsWith(line, kHttpPrefix)) {
      absl::string_view rest = absl::StripPrefix(line, kHttpPrefix);
      absl::MutexLock lock(&mu_);
      http_listening_address_ = std::string(rest.substr(0, rest.find(' ')));
    }
    if (!address_found && absl::StartsWith(line, kListeningPrefix)) {
      address_found = true;
      absl::string_view address = absl::StripAsciiWhitespace(absl::StripPrefix(line, kListeningPrefix));
      absl::MutexLock lock(&mu_);
      listening_address_ = std::string(address);
      return;
    }
    WriteAll(log_fd_, absl::StrCat(line, "\n"));
  };
  while (!stop_reader_.load()) {
    pollfd poll_fd = {.fd = read_fd, .events = POLLIN, .revents = 0};
    const int ready = poll(&poll_fd, 1, 100);
    if (ready == 0 || (ready < 0 && errno == EINTR)) continue;
    const ssize_t got = ready < 0 ? -1 : read(read_fd, buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    pending.append(buffer, static_cast<size_t>(got));
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      take_line(absl::string_view(pending).substr(0, newline));
      pending.erase(0, newline + 1);
    }
    if (pending.size() > kMaxLineBytes) {
      take_line(pending);
      pending.clear();
    }
  }
  if (!pending.empty()) take_line(pending);
  close(read_fd);
  absl::MutexLock lock(&mu_);
  stdout_closed_ = true;
}

absl::Status LocalCluster::SpawnWorker(int i) {
  ASSIGN_OR_RETURN(const std::vector<std::string> security_flags, SecurityFlags(options_.security, false));
  std::vector<std::string> argv = {options_.binary,   "worker",  "--listen",       "127.0.0.1:0",
                                   "--coordinator",   internal_address_, "--model", options_.model_dir};
  argv.insert(argv.end(), security_flags.begin(), security_flags.end());
  argv.insert(argv.end(), options_.worker_flags.begin(), options_.worker_flags.end());
  if (!options_.worker_devices.empty()) {
    const size_t slot = static_cast<size_t>(i) % options_.worker_devices.size();
    argv.insert(argv.end(), {"--device", absl::StrCat(options_.worker_devices[slot])});
  }
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn({.argv = argv, .stdout_fd = log_fd_, .stderr_fd = log_fd_});
  if (!child.ok()) return child.status();
  workers_[i] = Slot{.process = *std::move(child), .exit_reported = false};
  return absl::OkStatus();
}

pid_t LocalCluster::coordinator_pid() const {
  return coordinator_.process != nullptr && coordinator_.process->running() ? coordinator_.process->pid() : 0;
}

pid_t LocalCluster::worker_pid(int i) const {
  if (i < 0 || i >= workers()) return 0;
  const Slot& slot = workers_[i];
  return slot.process != nullptr && slot.process->running() ? slot.process->pid() : 0;
}

absl::Status LocalCluster::KillWorker(int i) {
  if (i < 0 || i >= workers()) {
    return absl::OutOfRangeError(absl::StrCat("worker index must be in [0, ", workers(), "). Given: ", i));
  }
  if (workers_[i].process == nullptr) return absl::FailedPreconditionError(absl::StrCat("worker ", i, " is not running"));
  workers_[i].process->KillAndReap();
  workers_[i].process.reset();
  return absl::OkStatus();
}

absl::Status LocalCluster::RestartWorker(int i) {
  if (i < 0 || i >= workers()) {
    return absl::OutOfRangeError(absl::StrCat("worker index must be in [0, ", workers(), "). Given: ", i));
  }
  if (stopped_) return absl::FailedPreconditionError("the cluster is stopped");
  if (workers_[i].process != nullptr) workers_[i].process->KillAndReap();
  workers_[i].process.reset();
  return SpawnWorker(i);
}

absl::Status LocalCluster::CheckCancelled() const {
  if (options_.cancel_requested && options_.cancel_requested()) {
    return absl::CancelledError("cancelled while waiting for the cluster");
  }
  return absl::OkStatus();
}

absl::Status LocalCluster::CheckChildrenAlive() {
  if (coordinator_.process == nullptr || !coordinator_.process->Poll()) {
    coordinator_.exit_reported = true;
    return absl::UnavailableError(absl::StrCat(
        "the coordinator ",
        coordinator_.process == nullptr ? "is not running" : DescribeWaitStatus(*coordinator_.process->wait_status())));
  }
  for (int i = 0; i < workers(); ++i) {
    Slot& slot = workers_[i];
    if (slot.process != nullptr && !slot.process->Poll()) {
      slot.exit_reported = true;
      return absl::UnavailableError(
          absl::StrCat("worker ", i, " (pid ", slot.process->pid(), ") ", DescribeWaitStatus(*slot.process->wait_status()),
                       " (its stderr is ", options_.log_path.empty() ? "above" : options_.log_path, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status LocalCluster::WaitForWorkersReady(int n, std::chrono::milliseconds timeout) {
  if (stopped_) return absl::FailedPreconditionError("the cluster is stopped");
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  auto stub = v1::Tessera::NewStub(channel_);
  std::string last_seen = "no answer yet";
  while (true) {
    RETURN_IF_ERROR(CheckChildrenAlive());
    RETURN_IF_ERROR(CheckCancelled());
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("want ", n, " workers ready within ", Seconds(timeout),
                                                      "; the coordinator at ", address_, " reports ", last_seen));
    }
    grpc::ClientContext context;
    const auto call_budget = std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::seconds(1));
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(call_budget));
    v1::ModelInfo info;
    const grpc::Status status = stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
    if (status.ok()) {
      if (info.workers_ready() == n) return absl::OkStatus();
      last_seen = absl::StrCat("workers_ready=", info.workers_ready());
    } else {
      last_seen = absl::StrCat("GetModelInfo failing: ", FromGrpcStatus(status).ToString());
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::vector<LocalClusterExit> LocalCluster::ReapExitedChildren() {
  std::vector<LocalClusterExit> exits;
  const auto check = [&](Slot& slot, int worker) {
    if (slot.process == nullptr || slot.exit_reported || slot.process->Poll()) return;
    slot.exit_reported = true;
    exits.push_back({.worker = worker, .wait_status = *slot.process->wait_status()});
  };
  check(coordinator_, -1);
  for (int i = 0; i < workers(); ++i) check(workers_[i], i);
  return exits;
}

void LocalCluster::Stop() {
  if (stopped_) return;
  stopped_ = true;
  std::vector<ChildProcess*> children;
  for (Slot& slot : workers_) {
    if (slot.process != nullptr) children.push_back(slot.process.get());
  }
  if (coordinator_.process != nullptr) children.push_back(coordinator_.process.get());
  StopChildren(children, options_.stop_timeout);
  stop_reader_.store(true);
  if (stdout_reader_.joinable()) stdout_reader_.join();
}

absl::StatusOr<std::string> FindTesseraBinaryNextToSelf() {
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (length <= 0) return absl::InternalError(absl::StrCat("readlink /proc/self/exe: ", strerror(errno)));
  const std::string self_path(self, static_cast<size_t>(length));
  const std::string binary = absl::StrCat(self_path.substr(0, self_path.rfind('/')), "/tessera");
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("no executable tessera next to ", self_path, ": ", binary));
  }
  return binary;
}

}  // namespace tessera
