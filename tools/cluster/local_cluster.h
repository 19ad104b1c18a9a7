// A coordinator and N workers of one `tessera` binary as child processes on
// 127.0.0.1: for `tessera local`, and for failure tests that kill and restart
// workers. The cluster is ready when the coordinator's GetModelInfo reports
// every worker; until then nothing is hidden: a child that exits, an address
// line that never comes, or a worker count that never settles is an error
// that says which, within one deadline.
//
// What it relies on from the binary (the contract with the coordinator and
// worker commands):
//   tessera coordinator --listen 127.0.0.1:PORT --model DIR SECURITY [coordinator_flags]
//     prints "coordinator internal API on 127.0.0.1:IPORT" and then exactly
//     one line "coordinator listening on 127.0.0.1:PORT" on stdout once it
//     serves (ports are the bound ones when asked for 0; without the internal
//     line, workers register on PORT);
//   tessera worker --listen 127.0.0.1:0 --coordinator 127.0.0.1:IPORT --model DIR SECURITY [worker_flags]
//     registers itself with the coordinator (tessera.v1.Coordinator);
//   both exit on SIGTERM; GetModelInfo.workers_ready counts live workers.
// SECURITY is --insecure unless LocalClusterSecurity names files: then
// --tls-cert/--tls-key/--tls-ca to both roles and --auth-tokens-file to the
// coordinator, and the launcher's own client speaks TLS with a token.
//
// Ownership: children live exactly as long as the LocalCluster (see
// child_process.h for what "child" guarantees). Call from one long-lived
// thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rpc/grpc_security.h"
#include "tools/cluster/child_process.h"

namespace tessera {

// How the children talk. Plaintext unless files are given: a launcher on
// loopback says so explicitly (--insecure to both roles).
struct LocalClusterSecurity {
  bool insecure = true;
  std::string cert_path;    // cluster member certificate (both roles; the public API's too)
  std::string key_path;     // its key
  std::string ca_path;      // the cluster CA
  std::string tokens_path;  // the coordinator's --auth-tokens-file
  std::string client_token;  // what the launcher's own client sends (one of the file's tokens)
};

struct LocalClusterOptions {
  std::string binary;     // path of the `tessera` executable
  std::string model_dir;  // passed to every child as --model
  int workers = 1;
  int coordinator_port = 0;  // 0: any free port
  LocalClusterSecurity security;
  std::vector<std::string> coordinator_flags;
  std::vector<std::string> worker_flags;
  // When non-empty, worker i also gets --device worker_devices[i % size]
  // (one GPU per worker process on a multi-GPU host).
  std::vector<int> worker_devices;
  // Start's whole budget: address line, then every worker ready.
  std::chrono::milliseconds ready_timeout = std::chrono::seconds(60);
  // Between SIGTERM and SIGKILL in Stop.
  std::chrono::milliseconds stop_timeout = std::chrono::seconds(5);
  // Children's stderr (and workers' stdout, and the coordinator's stdout after
  // its address line) are appended here; empty: the launcher's stderr.
  std::string log_path;
  // Polled while waiting; returning true abandons the wait with CANCELLED
  // (e.g. SIGINT pending during a long start).
  std::function<bool()> cancel_requested;
};

// A child that ended by itself, as ReapExitedChildren reports it.
struct LocalClusterExit {
  int worker = -1;  // -1: the coordinator
  int wait_status = 0;
};

class LocalCluster {
 public:
  // Spawns the coordinator, reads its address, spawns the workers, and waits
  // until all are ready. On any error every child is stopped before return.
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);

  ~LocalCluster();  // Stop()
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // "127.0.0.1:PORT" of the coordinator's public API.
  const std::string& address() const { return address_; }
  // "127.0.0.1:PORT" of its internal API (where workers register).
  const std::string& internal_address() const { return internal_address_; }
  // "127.0.0.1:PORT" of its HTTP API (coordinator flag --http-listen); empty: none.
  const std::string& http_address() const { return http_address_; }
  // What a client of address() needs: TLS with the cluster CA and a token, or
  // plaintext.
  ChannelSecurity client_security() const { return client_security_; }
  int workers() const { return static_cast<int>(workers_.size()); }
  pid_t coordinator_pid() const;
  // 0 when the slot has no running process.
  pid_t worker_pid(int i) const;

  // SIGKILL to worker i (and its group), reaped before return.
  absl::Status KillWorker(int i);
  // A fresh worker process in slot i (the old one is killed first if it still
  // runs). Does not wait: follow with WaitForWorkersReady.
  absl::Status RestartWorker(int i);
  // Until GetModelInfo reports exactly `n` workers ready. Fails early when the
  // coordinator or a worker not killed through KillWorker exits.
  absl::Status WaitForWorkersReady(int n, std::chrono::milliseconds timeout);

  // Children that have exited since the last call (reaped), for a launcher
  // that watches its cluster.
  std::vector<LocalClusterExit> ReapExitedChildren();

  // SIGTERM to every child, up to stop_timeout, then SIGKILL; all reaped.
  // Idempotent.
  void Stop();

 private:
  explicit LocalCluster(const LocalClusterOptions& options) : options_(options) {}

  absl::Status StartAll();
  absl::Status StartCoordinator(std::chrono::steady_clock::time_point deadline);
  absl::Status SpawnWorker(int i);
  absl::Status CheckChildrenAlive();
  absl::Status CheckCancelled() const;
  void ForwardCoordinatorStdout(int read_fd);

  struct Slot {
    std::unique_ptr<ChildProcess> process;  // null: killed through KillWorker
    bool exit_reported = false;
  };

  LocalClusterOptions options_;
  int log_fd_ = 2;
  bool owns_log_fd_ = false;
  bool stopped_ = false;
  Slot coordinator_;
  std::vector<Slot> workers_;  // (workers,)
  std::string address_;
  std::string internal_address_;
  std::string http_address_;
  ChannelSecurity client_security_ = ChannelSecurity::Insecure();
  std::shared_ptr<grpc::Channel> channel_;  // to address_

  // The coordinator's stdout: a thread finds the address line and forwards
  // everything else to the log, so the coordinator never blocks on a full pipe.
  std::thread stdout_reader_;
  std::atomic<bool> stop_reader_{false};
  absl::Mutex mu_;
  std::optional<std::string> listening_address_ ABSL_GUARDED_BY(mu_);
  std::optional<std::string> internal_listening_address_ ABSL_GUARDED_BY(mu_);
  std::optional<std::string> http_listening_address_ ABSL_GUARDED_BY(mu_);
  bool stdout_closed_ ABSL_GUARDED_BY(mu_) = false;
};

// `tessera` next to the running executable: dir(/proc/self/exe) + "/tessera".
absl::StatusOr<std::string> FindTesseraBinaryNextToSelf();

}  // namespace tessera
