// The turn is a FIFO of tickets under one mutex with the group table; only
// NewNcclUniqueId runs outside it (while its request holds the turn).
#include "coordinator/nccl_groups.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "coordinator/coordinator_metrics.h"
#include "rpc/grpc_util.h"

namespace tessera {
namespace {

constexpr size_t kNcclUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES

std::string RandomSuffix() {
  std::random_device device;
  return absl::StrFormat("%08x", device());
}

}  // namespace

absl::string_view PeerTransportModeName(PeerTransportMode mode) {
  switch (mode) {
    case PeerTransportMode::kAuto:
      return "auto";
    case PeerTransportMode::kGrpc:
      return "grpc";
    case PeerTransportMode::kNccl:
      return "nccl";
  }
  return "unknown";
}

absl::StatusOr<PeerTransportMode> ParsePeerTransportMode(absl::string_view name) {
  for (PeerTransportMode mode : {PeerTransportMode::kAuto, PeerTransportMode::kGrpc, PeerTransportMode::kNccl}) {
    if (name == PeerTransportModeName(mode)) return mode;
  }
  return absl::InvalidArgumentError(absl::StrCat("--peer-transport must be auto, grpc or nccl. Given: ", name));
}

absl::StatusOr<bool> UseNccl(PeerTransportMode mode, const std::vector<ShardLease>& shards) {
  if (shards.size() < 2 || mode == PeerTransportMode::kGrpc) return false;
  for (size_t rank = 0; rank < shards.size(); ++rank) {
    const ShardLease& shard = shards[rank];
    if (std::find(shard.peer_transports.begin(), shard.peer_transports.end(), kPeerTransportNccl) !=
        shard.peer_transports.end()) {
      continue;
    }
    if (mode == PeerTransportMode::kAuto) return false;
    return absl::FailedPreconditionError(absl::StrCat(
        "--peer-transport nccl: worker ", shard.address, " (shard ", rank + 1, " of ", shards.size(),
        ") does not offer the nccl peer transport (it offers: ",
        shard.peer_transports.empty() ? "none reported" : absl::StrJoin(shard.peer_transports, ", "), ")"));
  }
  // NCCL cannot place two ranks of one group on one GPU.
  for (size_t a = 0; a < shards.size(); ++a) {
    for (size_t b = a + 1; b < shards.size(); ++b) {
      if (shards[a].device_id.empty() || shards[a].device_id != shards[b].device_id) continue;
      if (mode == PeerTransportMode::kAuto) return false;
      return absl::FailedPreconditionError(absl::StrCat(
          "--peer-transport nccl: workers ", shards[a].address, " and ", shards[b].address, " (shards ", a + 1, " and ",
          b + 1, " of ", shards.size(), ") share GPU ", shards[a].device_id,
          "; NCCL needs one GPU per rank (use --peer-transport auto or grpc)"));
    }
  }
  return true;
}

NcclPrefillTurn::~NcclPrefillTurn() {
  if (!ended_) End(absl::AbortedError("the request ended before its prefill finished"));
}

void NcclPrefillTurn::End(const absl::Status& prefill) {
  if (ended_) return;
  ended_ = true;
  groups_->EndTurn(*this, prefill);
}

absl::StatusOr<std::unique_ptr<NcclPrefillTurn>> NcclGroups::BeginPrefill(const std::vector<ShardLease>& shards,
                                                                          const ShardExecution& execution) {
  GroupKey addresses;
  for (const ShardLease& shard : shards) addresses.push_back(shard.address);
  uint64_t ticket = 0;
  {
    absl::MutexLock lock(&mu_);
    ticket = next_ticket_++;
    turns_.push_back(ticket);
    RETURN_IF_ERROR(WaitForTurn(ticket, execution));
  }
  // From here on the turn is ours; destroying `turn` on any path gives it back.
  std::unique_ptr<NcclPrefillTurn> turn(new NcclPrefillTurn(this, ticket, addresses));
  {
    absl::MutexLock lock(&mu_);
    if (auto it = groups_.find(addresses); it != groups_.end()) {
      turn->group_ = it->second;
      return turn;
    }
  }
  ASSIGN_OR_RETURN(turn->group_, FormGroup(shards, execution));
  return turn;
}

absl::Status NcclGroups::WaitForTurn(uint64_t ticket, const ShardExecution& execution) {
  const absl::Time deadline = absl::FromChrono(execution.deadline);
  auto my_turn = [this, ticket]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return turns_.front() == ticket; };
  while (!my_turn()) {
    absl::Status stop = execution.interruption();
    if (stop.ok() && absl::Now() >= deadline) {
      stop = absl::DeadlineExceededError(
          "the request's deadline passed while it waited for another request's NCCL "
          "prefill (one runs at a time)");
    }
    if (!stop.ok()) {
      turns_.erase(std::find(turns_.begin(), turns_.end(), ticket));
      return stop;
    }
    mu_.AwaitWithTimeout(absl::Condition(&my_turn), std::min(execution.poll_interval, deadline - absl::Now()));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::NcclGroup> NcclGroups::FormGroup(const std::vector<ShardLease>& shards,
                                                    const ShardExecution& execution) {
  const ShardLease& root = shards.front();
  uint64_t number = 0;
  {
    absl::MutexLock lock(&mu_);
    number = ++groups_numbered_;
  }
  v1::NcclGroup group;
  group.set_group_id(absl::StrCat("nccl-", number, "-", RandomSuffix()));

  grpc::ClientContext context;
  const auto own_deadline = absl::ToChronoTime(absl::Now() + options_.nccl_unique_id_deadline);
  context.set_deadline(std::min(own_deadline, execution.deadline));
  v1::NewNcclUniqueIdRequest request;
  request.set_group_id(group.group_id());
  v1::NewNcclUniqueIdResponse response;
  const grpc::Status status = root.stub->NewNcclUniqueId(&context, request, &response);
  const std::string where = absl::StrCat("worker ", root.address, " (rank 0 of ", shards.size(), ")");
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && execution.deadline <= own_deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the request's deadline passed while ", where, " created an NCCL unique id"));
    }
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) execution.on_worker_unreachable(root.address);
    return absl::UnavailableError(
        absl::StrCat(where, " could not create an NCCL unique id: ", FromGrpcStatus(status).message()));
  }
  if (response.unique_id().size() != kNcclUniqueIdBytes) {
    return absl::UnavailableError(absl::StrCat(where, " returned an NCCL unique id of ", response.unique_id().size(),
                                               " bytes; NCCL's has ", kNcclUniqueIdBytes));
  }
  group.set_unique_id(response.unique_id());

  GroupKey addresses;
  for (const ShardLease& shard : shards) addresses.push_back(shard.address);
  std::fprintf(stderr, "coordinator: NCCL group %s formed over %s (bootstrap on rank 0)\n", group.group_id().c_str(),
               absl::StrJoin(addresses, ", ").c_str());
  if (options_.metrics != nullptr) options_.metrics->nccl_groups_formed.Increment();
  absl::MutexLock lock(&mu_);
  groups_[std::move(addresses)] = group;
  return group;
}

void NcclGroups::EndTurn(const NcclPrefillTurn& turn, const absl::Status& prefill) {
  absl::MutexLock lock(&mu_);
  if (!prefill.ok() && !turn.group_.group_id().empty()) {
    Drop(turn.addresses_, turn.group_.group_id(),
         absl::StrCat("a request failed before its prefill ended: ", absl::StatusCodeToString(prefill.code()), ": ",
                      prefill.message()));
  }
  turns_.erase(std::find(turns_.begin(), turns_.end(), turn.ticket_));
}

void NcclGroups::DropWorker(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<GroupKey, std::string>> doomed;
  for (const auto& [key, group] : groups_) {
    if (std::find(key.begin(), key.end(), address) != key.end()) doomed.emplace_back(key, group.group_id());
  }
  for (const auto& [key, group_id] : doomed) Drop(key, group_id, absl::StrCat("worker ", address, " left"));
}

void NcclGroups::Drop(const GroupKey& key, const std::string& group_id, absl::string_view reason) {
  auto it = groups_.find(key);
  if (it == groups_.end() || it->second.group_id() != group_id) return;
  groups_.erase(it);
  std::fprintf(stderr, "coordinator: NCCL group %s dropped (%s) over %s\n", group_id.c_str(),
               std::string(reason).c_str(), absl::StrJoin(key, ", ").c_str());
}

int NcclGroups::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(groups_.size());
}

}  // namespace tessera
