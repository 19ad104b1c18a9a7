// Greedy placement over the shard counts n … workers; the first that fits
// wins. Within a count, each shard goes to the least loaded worker that fits.
#include "coordinator/shard_placement.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/striped_rounds.h"
#include "common/zigzag.h"
#include "coordinator/shard_plan.h"

namespace tessera {
namespace {

int64_t AddSaturating(int64_t a, int64_t b) {
  int64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? INT64_MAX : sum;
}

// True when worker a is less loaded than worker b: fewer running shards,
// then less of its capacity in use (compared as cross products, exactly).
bool LessLoaded(const WorkerRoom& a, const WorkerRoom& b) {
  if (a.running_shards != b.running_shards) return a.running_shards < b.running_shards;
  const __int128 used_a = std::max<int64_t>(0, a.capacity_tokens - a.free_tokens);
  const __int128 used_b = std::max<int64_t>(0, b.capacity_tokens - b.free_tokens);
  const __int128 cap_a = std::max<int64_t>(1, a.capacity_tokens);
  const __int128 cap_b = std::max<int64_t>(1, b.capacity_tokens);
  return used_a * cap_b < used_b * cap_a;
}

// The rounds in which `shard` prompt tokens of a multi-shard plan run on a
// worker with `room`'s pass: one for a zigzag plan, whose shards are not dealt
// in rounds (INT64_MAX when the shard does not fit one pass then).
int64_t RoundsOn(const WorkerRoom& room, int64_t shard, bool zigzag) {
  const int64_t rounds = RoundsForPass(shard, room.pass_tokens);
  return zigzag && rounds > 1 ? INT64_MAX : rounds;
}

// Places `spans` (the plan's shards in order, workers unset) on workers whose
// room (in tokens) is given, each on the least loaded free worker that fits
// it, or returns nothing when some shard fits nowhere. `last_first`: place
// the last shard (which also holds the generated tokens) before the others.
// A plan of several shards runs in the rounds its longest pass needs
// (set in every slot), or returns nothing when some worker does not run that
// many or some shard is shorter (one piece a round).
std::optional<std::vector<ShardSlot>> Assign(std::vector<ShardSlot> spans, int64_t max_new_tokens,
                                             const std::vector<int64_t>& room, absl::Span<const WorkerRoom> load,
                                             uint64_t rotation, bool last_first) {
  const int num_shards = static_cast<int>(spans.size());
  const bool zigzag = spans[0].late_end > spans[0].late_begin;
  const size_t workers = room.size();
  std::vector<bool> taken(workers, false);
  for (int pass = 0; pass < num_shards; ++pass) {
    const int rank = !last_first ? pass : (pass == 0 ? num_shards - 1 : pass - 1);
    const bool last = rank == num_shards - 1;
    const int64_t prompt = spans[rank].tokens();
    const int64_t tokens = prompt + (last ? max_new_tokens : 0);
    int worker = -1;
    for (size_t k = 0; k < workers; ++k) {
      const size_t w = (rotation + k) % workers;
      if (taken[w] || room[w] < tokens) continue;
      // A shard of several runs one pass a round.
      if (num_shards > 1 && RoundsOn(load[w], prompt, zigzag) > load[w].max_rounds) continue;
      if (worker < 0 || LessLoaded(load[w], load[worker])) worker = static_cast<int>(w);
    }
    if (worker < 0) return std::nullopt;
    taken[worker] = true;
    spans[rank].worker = worker;
  }
  if (num_shards == 1) return spans;
  int64_t rounds = 1;
  for (const ShardSlot& s : spans) rounds = std::max(rounds, RoundsOn(load[s.worker], s.tokens(), zigzag));
  for (const ShardSlot& s : spans) {
    if (rounds > load[s.worker].max_rounds || rounds > s.tokens()) return std::nullopt;
  }
  for (ShardSlot& s : spans) s.prefill_rounds = static_cast<int32_t>(rounds);
  return spans;
}

// The plan's shards in order, workers unset: zigzag over 2n pieces when
// `zigzag` (n > 1 and at least two tokens a piece), else n contiguous runs.
absl::StatusOr<std::vector<ShardSlot>> PlanSpans(const PlacementRequest& request, int num_shards, bool zigzag) {
  const int64_t chunk = std::max<int64_t>(1, request.chunk_size);
  std::vector<ShardSlot> spans(num_shards);
  if (zigzag && num_shards > 1 && request.prompt_tokens >= 2 * num_shards) {
    ASSIGN_OR_RETURN(const std::vector<int64_t> bounds, PlanShardBounds(request.prompt_tokens, chunk, 2 * num_shards));
    for (int k = 0; k < 2 * num_shards; ++k) {
      ShardSlot& s = spans[ZigzagRank(k, num_shards)];
      (k < num_shards ? s.token_begin : s.late_begin) = bounds[k];
      (k < num_shards ? s.token_end : s.late_end) = bounds[k + 1];
    }
    return spans;
  }
  ASSIGN_OR_RETURN(const std::vector<int64_t> bounds, PlanShardBounds(request.prompt_tokens, chunk, num_shards));
  for (int r = 0; r < num_shards; ++r) {
    spans[r].token_begin = bounds[r];
    spans[r].token_end = bounds[r + 1];
  }
  return spans;
}

// With `single_fallback`, one shard on one worker (prefilled in pieces) is
// tried after every split.
std::optional<std::vector<ShardSlot>> PlaceWithin(const PlacementRequest& request, const std::vector<int64_t>& room,
                                                  absl::Span<const WorkerRoom> load, bool single_fallback) {
  const int workers = static_cast<int>(room.size());
  const int first = ChooseShardCount(request.prompt_tokens, workers, request.min_shard_tokens);
  const int most = static_cast<int>(std::min<int64_t>(workers, request.prompt_tokens));
  std::vector<int> counts;
  for (int num_shards = first; num_shards <= most; ++num_shards) counts.push_back(num_shards);
  if (single_fallback && first > 1) counts.push_back(1);
  for (int num_shards : counts) {
    // A zigzag plan runs in one round; when it does not fit, contiguous shards in rounds may.
    for (const bool zigzag : {true, false}) {
      if (zigzag && !request.zigzag) continue;
      absl::StatusOr<std::vector<ShardSlot>> spans = PlanSpans(request, num_shards, zigzag);
      if (!spans.ok()) continue;
      // Ties rotate for one shard; several keep their ranks (see the header).
      const uint64_t rotation = num_shards == 1 ? request.rotation : 0;
      // Shards in order when they fit so; else the decoding shard first.
      if (auto slots = Assign(*spans, request.max_new_tokens, room, load, rotation, /*last_first=*/false)) {
        return slots;
      }
      if (auto slots = Assign(*spans, request.max_new_tokens, room, load, rotation, /*last_first=*/true)) {
        return slots;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

int64_t TotalCapacityTokens(absl::Span<const WorkerRoom> rooms) {
  int64_t total = 0;
  for (const WorkerRoom& r : rooms) total = AddSaturating(total, std::max<int64_t>(0, r.capacity_tokens));
  return total;
}

int64_t TotalFreeTokens(absl::Span<const WorkerRoom> rooms) {
  int64_t total = 0;
  for (const WorkerRoom& r : rooms) total = AddSaturating(total, std::max<int64_t>(0, r.free_tokens));
  return total;
}

absl::StatusOr<std::vector<ShardSlot>> PlaceShards(const PlacementRequest& request,
                                                   absl::Span<const WorkerRoom> rooms) {
  if (rooms.empty()) return absl::UnavailableError("no worker is ready to take the request; try again later");
  const int64_t needed = request.prompt_tokens + request.max_new_tokens;
  const int64_t capacity = TotalCapacityTokens(rooms);
  if (needed > capacity) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_tokens + max_new_tokens must be <= ", capacity, " (the context capacity of the ", rooms.size(),
        " ready workers). Given: ", request.prompt_tokens, " + ", request.max_new_tokens, " = ", needed));
  }
  std::vector<int64_t> empty_room, free_room;
  for (const WorkerRoom& r : rooms) {
    empty_room.push_back(r.capacity_tokens);
    free_room.push_back(std::min(r.free_tokens, r.capacity_tokens));
  }
  if (auto slots = PlaceWithin(request, free_room, rooms, false)) return *std::move(slots);
  // One worker takes the whole request only when no split could ever fit
  // (prefill passes or the decoding worker's room), not when the split's
  // workers are busy for the moment: then the request waits as before.
  const bool split_fits_idle = PlaceWithin(request, empty_room, rooms, false).has_value();
  if (!split_fits_idle) {
    if (auto slots = PlaceWithin(request, free_room, rooms, true)) return *std::move(slots);
  }
  if (!split_fits_idle && !PlaceWithin(request, empty_room, rooms, true)) {
    // The sum fits, but no worker holds it all, and the even split leaves
    // some worker (usually the last one, which also holds the generated
    // tokens) short, or a shard longer than a worker's prefill pass,
    // whatever the load.
    int64_t shortest_pass = INT64_MAX;  // the least prompt a worker prefills as a shard of several
    int32_t fewest_rounds = 1;
    for (const WorkerRoom& r : rooms) {
      const int64_t most = r.pass_tokens > INT64_MAX / std::max(1, r.max_rounds) ? INT64_MAX : r.pass_tokens * r.max_rounds;
      if (most < shortest_pass) {
        shortest_pass = most;
        fewest_rounds = r.max_rounds;
      }
    }
    const std::string passes =
        shortest_pass >= capacity ? std::string()
        : fewest_rounds == 1
            ? absl::StrCat(", and a shard of several must fit one prefill pass (as few as ", shortest_pass,
                           " tokens on some workers)")
            : absl::StrCat(", and a shard of several must fit ", fewest_rounds, " prefill passes (as few as ",
                           shortest_pass, " tokens on some workers)");
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_tokens + max_new_tokens = ", needed, " cannot be split over the ", rooms.size(),
        " ready workers (context capacity ", capacity, " tokens in all): no worker holds it all, the decoding worker "
        "must also hold ", request.max_new_tokens, " generated tokens", passes,
        "; use a shorter prompt or a smaller max_new_tokens"));
  }
  int64_t free_tokens = 0;
  for (int64_t r : free_room) free_tokens = AddSaturating(free_tokens, std::max<int64_t>(0, r));
  const absl::string_view where = free_tokens >= needed ? " (spread too thinly over the workers)" : "";
  return absl::ResourceExhaustedError(absl::StrCat("the cluster is momentarily full: ", free_tokens, " tokens free",
                                                   where, ", ", needed, " needed; retry later"));
}

}  // namespace tessera
