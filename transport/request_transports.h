// How a worker reaches the peers of its requests, as the worker's shard
// runner sees it: a transport for a shard's prefill exchanges and one for the
// last shard's split-KV queries, made per request from what the coordinator
// planned. The worker's process assembles the implementation (gRPC, plus NCCL
// on GPUs: worker_transports.h); tests hand in their own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/peer_transport.h"

namespace tessera {

// The peers of one request, as the coordinator planned them.
struct RequestPeers {
  std::string request_id;
  std::string secret;                        // the request's secret: every block and query carries it
  int rank = 0;                              // this worker's shard
  std::vector<std::string> addresses;        // (shards): the worker of each rank
  std::chrono::milliseconds timeout{10000};  // how long a peer may keep this rank waiting
  std::string nccl_group_id;                 // empty: no NCCL group for this request
  std::string nccl_unique_id;                // the group's ncclUniqueId bytes
  const std::atomic<bool>* cancelled = nullptr;  // set when the request is cancelled
};

class RequestTransports {
 public:
  virtual ~RequestTransports() = default;
  // The transport of a shard's prefill: NCCL when the request names a group
  // (FAILED_PRECONDITION where NCCL is not offered), else gRPC.
  virtual absl::StatusOr<std::unique_ptr<PeerTransport>> ForPrefill(const RequestPeers& peers) = 0;
  // The transport the last shard's decode sends split-KV queries over.
  virtual absl::StatusOr<std::unique_ptr<PeerTransport>> ForDecode(const RequestPeers& peers) = 0;
  // A shard of the request (id and secret) was admitted here: keep the
  // blocks its peers send it until it takes them or ends.
  virtual void BeginRequest(const std::string& request_id, const std::string& secret) = 0;
  // The request ended, however it ended: wake its waits, drop its blocks,
  // including those still on their way. A request that reuses the id with
  // another secret is not affected.
  virtual void EndRequest(const std::string& request_id, const std::string& secret) = 0;
  // Bytes of peer blocks received and not yet taken (the worker's memory gauge counts them).
  virtual int64_t PendingBytes() = 0;
  // The transports offered, e.g. {"grpc", "nccl"} (what GetStatus reports).
  virtual std::vector<std::string> Offered() const = 0;
};

}  // namespace tessera
