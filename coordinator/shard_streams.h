// The RunShard calls of one request: one server-streaming call per shard,
// each read by its own thread into one queue, so that a shard that is quiet
// (non-last shards send nothing after `prefilled` until cancelled) never
// blocks the relay of another's events. The owner takes items with Next();
// CancelAll ends every call still running; the destructor cancels and joins.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tessera/v1/worker.grpc.pb.h"

namespace tessera {

// Trailing metadata of a RunShard that failed because of a peer (the key the
// worker's service sets: services/worker_service.h).
inline constexpr char kLostPeerMetadataKey[] = "tessera-lost-peer";

class ShardStreams {
 public:
  struct Call {
    std::string address;
    std::shared_ptr<v1::Worker::Stub> stub;
    v1::RunShardRequest request;
  };

  // One event of one shard, or (ended) the end of its stream with its status
  // and, when the worker blamed a peer for its failure, the peer's address
  // (trailing metadata kLostPeerMetadataKey, worker.proto).
  struct Item {
    int rank = 0;
    bool ended = false;
    v1::RunShardEvent event;
    grpc::Status status;
    std::string lost_peer;
  };

  // Starts every call; each inherits `deadline` (the client's).
  ShardStreams(std::vector<Call> calls, std::chrono::system_clock::time_point deadline);
  ShardStreams(const ShardStreams&) = delete;
  ShardStreams& operator=(const ShardStreams&) = delete;
  ~ShardStreams();

  // The next item, or nothing when none arrived within `timeout`.
  std::optional<Item> Next(absl::Duration timeout);

  // Cancels every call (the workers then free the request). Idempotent.
  void CancelAll();

 private:
  void Read(int rank);
  void Push(Item item);

  std::vector<Call> calls_;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts_;
  absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> readers_;
};

}  // namespace tessera
