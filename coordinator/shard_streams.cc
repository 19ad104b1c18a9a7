// Reader threads open their own call (so a worker slow to connect delays
// nobody) and push every event, then the final status, to the shared queue.
#include "coordinator/shard_streams.h"

#include <map>

namespace tessera {

ShardStreams::ShardStreams(std::vector<Call> calls, std::chrono::system_clock::time_point deadline)
    : calls_(std::move(calls)) {
  for (size_t rank = 0; rank < calls_.size(); ++rank) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(deadline);
    contexts_.push_back(std::move(context));
  }
  for (size_t rank = 0; rank < calls_.size(); ++rank) {
    readers_.emplace_back([this, rank] { Read(static_cast<int>(rank)); });
  }
}

ShardStreams::~ShardStreams() {
  CancelAll();
  for (std::thread& reader : readers_) reader.join();
}

void ShardStreams::Read(int rank) {
  const Call& call = calls_[rank];
  std::unique_ptr<grpc::ClientReader<v1::RunShardEvent>> reader =
      call.stub->RunShard(contexts_[rank].get(), call.request);
  Item item;
  item.rank = rank;
  while (reader->Read(&item.event)) {
    Push(item);
    item.event.Clear();
  }
  item.ended = true;
  item.status = reader->Finish();
  const std::multimap<grpc::string_ref, grpc::string_ref>& trailers = contexts_[rank]->GetServerTrailingMetadata();
  if (auto it = trailers.find(kLostPeerMetadataKey); it != trailers.end()) {
    item.lost_peer.assign(it->second.data(), it->second.size());
  }
  Push(std::move(item));
}

void ShardStreams::Push(Item item) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(item));
}

std::optional<ShardStreams::Item> ShardStreams::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto has_item = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return !queue_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&has_item), timeout)) return std::nullopt;
  Item item = std::move(queue_.front());
  queue_.pop_front();
  return item;
}

void ShardStreams::CancelAll() {
  for (auto& context : contexts_) context->TryCancel();
}

}  // namespace tessera
