// libFuzzer target: WorkerStatus messages as the coordinator's registry
// receives them from health checks, through what it computes from them: the
// status check (CheckWorkerStatus: a worker with impossible numbers is not
// ready), capacity and free tokens, reservations, and the placement of a
// request over the ready workers (PlaceShards). The input is up to four
// length-prefixed statuses, then the request's numbers.
// Invariants: capacity in [0, 2^40], free tokens in [0, capacity] whatever
// is held, reservations non-negative, capacity sums never negative; a
// placement covers the prompt in order, on distinct workers, each shard
// within its worker's free room, the decoding shard with room for every
// generated token. Violations trap.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "coordinator/shard_placement.h"
#include "coordinator/worker_capacity.h"
#include "google/protobuf/stubs/logging.h"
#include "tessera/v1/worker.pb.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

// Parse failures are expected by the thousand: protobuf's log of each is noise.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  const int workers = input.ConsumeIntegralInRange<int>(1, 4);
  std::vector<tessera::WorkerRoom> rooms;
  for (int w = 0; w < workers; ++w) {
    const std::string bytes = input.ConsumeRandomLengthString(256);
    tessera::v1::WorkerStatus status;
    if (!status.ParseFromString(bytes)) continue;
    if (!tessera::CheckWorkerStatus(status).ok()) continue;  // not ready: never planned on
    const int64_t capacity = tessera::WorkerCapacityTokens(status);
    Check(capacity >= 0 && capacity <= tessera::kUnboundedTokens);
    const int64_t held = input.ConsumeIntegral<int64_t>();
    const int64_t free_tokens = tessera::WorkerFreeTokens(status, held);
    Check(free_tokens >= 0 && free_tokens <= capacity);
    const int64_t tokens = input.ConsumeIntegral<int64_t>();
    Check(tessera::ShardReservationBytes(status, tokens) >= 0);
    rooms.push_back({capacity, free_tokens, input.ConsumeIntegralInRange<int32_t>(0, 1000)});
  }
  Check(tessera::TotalCapacityTokens(rooms) >= 0 && tessera::TotalFreeTokens(rooms) >= 0);
  tessera::PlacementRequest request;
  request.prompt_tokens = input.ConsumeIntegralInRange<int64_t>(1, 1 << 20);
  request.max_new_tokens = input.ConsumeIntegralInRange<int64_t>(1, 4096);
  request.min_shard_tokens = input.ConsumeIntegralInRange<int64_t>(1, 1 << 16);
  request.chunk_size = input.ConsumeIntegralInRange<int64_t>(1, 256);
  request.rotation = input.ConsumeIntegral<uint64_t>();
  absl::StatusOr<std::vector<tessera::ShardSlot>> slots = tessera::PlaceShards(request, rooms);
  if (!slots.ok()) {
    const absl::StatusCode code = slots.status().code();
    Check(code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kInvalidArgument ||
          code == absl::StatusCode::kResourceExhausted);
    Check((code == absl::StatusCode::kUnavailable) == rooms.empty());
    return 0;
  }
  Check(!slots->empty() && slots->size() <= rooms.size());
  std::set<int> used;
  int64_t expected_begin = 0;
  for (size_t rank = 0; rank < slots->size(); ++rank) {
    const tessera::ShardSlot& slot = (*slots)[rank];
    Check(slot.worker >= 0 && slot.worker < static_cast<int>(rooms.size()));
    Check(used.insert(slot.worker).second);
    Check(slot.token_begin == expected_begin && slot.token_end > slot.token_begin);
    expected_begin = slot.token_end;
    const bool last = rank + 1 == slots->size();
    const int64_t need = slot.token_end - slot.token_begin + (last ? request.max_new_tokens : 0);
    const tessera::WorkerRoom& room = rooms[slot.worker];
    Check(need <= room.free_tokens && need <= room.capacity_tokens);
  }
  Check(expected_begin == request.prompt_tokens);
  return 0;
}
