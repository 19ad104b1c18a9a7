// NCCL worker groups: which requests exchange over NCCL, which communicator
// they use, and one NCCL prefill at a time.
//
// Why one at a time: NCCL collectives on different communicators sharing a
// GPU, or two requests on one communicator issued in different orders on
// different ranks, can deadlock. So a request that uses NCCL first takes the
// cluster-wide prefill turn (FIFO; waiting respects the request's
// cancellation and deadline), holds it while its RunShard calls prefill, and
// gives it back once every shard reported `prefilled` or the request ended.
// Decode needs no turn: it never uses NCCL (split-KV attention is AttendKv).
//
// Groups: a communicator costs a bootstrap, so workers keep one per group and
// the coordinator reuses a group for every request over the same workers in
// the same order. The first such request forms it: a fresh group id and an
// NCCL unique id from the rank-0 worker (which hosts the bootstrap). A request
// that fails or is cancelled before every shard reported `prefilled` may have
// aborted the communicator, and a worker that leaves the registry takes its
// communicator with it: either drops the group, and the next request forms a
// new one (ids are single-use). Groups are looked up and formed while holding
// the turn, so a request never picks up a group that the one before it is
// about to drop.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/coordinator_options.h"
#include "coordinator/shard_execution.h"
#include "coordinator/worker_registry.h"
#include "tessera/v1/worker.pb.h"

namespace tessera {

inline constexpr absl::string_view kPeerTransportNccl = "nccl";

// "auto", "grpc" or "nccl".
absl::string_view PeerTransportModeName(PeerTransportMode mode);
// INVALID_ARGUMENT quoting the choices for anything else.
absl::StatusOr<PeerTransportMode> ParsePeerTransportMode(absl::string_view name);

// Whether these shards exchange over NCCL: never for one shard; for more,
// when every worker offers "nccl" and no two share a GPU (kAuto), or always
// (kNccl: FAILED_PRECONDITION naming the first worker that does not offer it,
// or the two that share a GPU).
absl::StatusOr<bool> UseNccl(PeerTransportMode mode, const std::vector<ShardLease>& shards);

class NcclGroups;

// A request's turn at NCCL prefill and the group it runs on. End it once the
// prefill is over; destroying it unended ends it as failed.
class NcclPrefillTurn {
 public:
  NcclPrefillTurn(const NcclPrefillTurn&) = delete;
  NcclPrefillTurn& operator=(const NcclPrefillTurn&) = delete;
  ~NcclPrefillTurn();

  // Every shard's RunShardRequest.nccl.
  const v1::NcclGroup& group() const { return group_; }

  // `prefill`: OK when every shard reported `prefilled`; else why the request
  // ended before that (the group is then dropped). Gives the turn back. Once.
  void End(const absl::Status& prefill);

 private:
  friend class NcclGroups;
  NcclPrefillTurn(NcclGroups* groups, uint64_t ticket, std::vector<std::string> addresses)
      : groups_(groups), ticket_(ticket), addresses_(std::move(addresses)) {}

  NcclGroups* const groups_;
  const uint64_t ticket_;
  const std::vector<std::string> addresses_;  // the shards' workers, in rank order
  v1::NcclGroup group_;
  bool ended_ = false;
};

class NcclGroups {
 public:
  explicit NcclGroups(const CoordinatorOptions& options) : options_(options) {}
  NcclGroups(const NcclGroups&) = delete;
  NcclGroups& operator=(const NcclGroups&) = delete;

  // Waits for the prefill turn (polling `execution.interruption` every
  // `execution.poll_interval`, until `execution.deadline`: DEADLINE_EXCEEDED),
  // then finds or forms the group of these shards. Forming asks the rank-0
  // worker for a unique id; its failure is UNAVAILABLE naming the worker.
  absl::StatusOr<std::unique_ptr<NcclPrefillTurn>> BeginPrefill(const std::vector<ShardLease>& shards,
                                                                const ShardExecution& execution);

  // Drops every group that has a worker at `address` (it left the registry).
  void DropWorker(const std::string& address);

  // Groups formed and not dropped.
  int size() const;

 private:
  friend class NcclPrefillTurn;
  using GroupKey = std::vector<std::string>;  // worker addresses in rank order

  absl::Status WaitForTurn(uint64_t ticket, const ShardExecution& execution) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::NcclGroup> FormGroup(const std::vector<ShardLease>& shards, const ShardExecution& execution);
  // Drops the group of `key` if it still is `group_id`.
  void Drop(const GroupKey& key, const std::string& group_id, absl::string_view reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndTurn(const NcclPrefillTurn& turn, const absl::Status& prefill);

  const CoordinatorOptions options_;
  mutable absl::Mutex mu_;
  std::deque<uint64_t> turns_ ABSL_GUARDED_BY(mu_);  // tickets waiting; the front one holds the turn
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t groups_numbered_ ABSL_GUARDED_BY(mu_) = 0;  // group ids handed out, formed or not
  std::map<GroupKey, v1::NcclGroup> groups_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera
