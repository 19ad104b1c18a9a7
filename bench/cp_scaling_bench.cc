// Context-parallel prefill scaling (issue 17): one prompt length through 1…W
// ranks, contiguous and zigzag (worker/shard_context.h). Each rank is a thread
// running Engine::Forward on its shard, as a worker does, on GPU r % devices:
// one engine per GPU, shared by the ranks on it. Ranks exchange over NCCL when
// every rank has a GPU of its own, else through host memory (the in-process
// transport: what two workers on one GPU do over gRPC, without the sockets).
//
// Prints per W and layout the prefill time (median over --repeats fresh
// random prompts, after one warm-up), the efficiency T1 / (W · TW), and each
// exchange kind's time as a share of TW (the mean over ranks of the host time
// inside the transport's AllGather/RingShift, by kind). The conv tails and SSD
// summaries are waited for where they are called: an NCCL call returns once
// its stream is idle, so their share includes waiting for the compute
// enqueued before. The ring's shifts run in flight beside the attention
// (worker/peer_exchange.h), so its share is transfer time, mostly hidden. On
// one GPU the ranks share its compute, so there TW measures the exchanges'
// cost, not scaling.
//
//   cp_scaling_bench --model M --length 131072 --workers 8 [--layouts contiguous,zigzag] [--repeats 3]
//                    [--precision bf16|fp32] [--devices N]
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "bench/cuda_bench_util.h"
#include "bench/engine_bench_util.h"
#include "coordinator/shard_plan.h"
#include "transport/in_process_transport.h"
#include "transport/mailbox.h"
#include "worker/shard_context.h"
#ifdef TESSERA_HAVE_NCCL
#include "transport/nccl_communicator.h"
#include "transport/nccl_transport.h"
#endif

namespace tessera::bench {
namespace {

constexpr std::chrono::milliseconds kPeerTimeout{600000};

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Host seconds spent inside each exchange kind (conv tail, SSD summary, ring K/V).
class TimedTransport final : public PeerTransport {
 public:
  explicit TimedTransport(PeerTransport& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  BufferSpace space() const override { return inner_.space(); }
  absl::Status AllGather(uint64_t tag, const void* mine, size_t bytes, void* all, CudaStream stream) override {
    const Clock::time_point start = Clock::now();
    absl::Status s = inner_.AllGather(tag, mine, bytes, all, stream);
    seconds_[Kind(tag)] += SecondsSince(start);
    return s;
  }
  absl::Status RingShift(uint64_t tag, const void* send, size_t send_bytes, void* recv, size_t recv_bytes,
                         CudaStream stream) override {
    const Clock::time_point start = Clock::now();
    absl::Status s = inner_.RingShift(tag, send, send_bytes, recv, recv_bytes, stream);
    seconds_[Kind(tag)] += SecondsSince(start);
    return s;
  }
  absl::StatusOr<std::vector<AttentionPartial>> QueryKv(int64_t slot, absl::Span<const float> q, int64_t q_len,
                                                        int64_t q_position0) override {
    return inner_.QueryKv(slot, q, q_len, q_position0);
  }
  const std::array<double, 3>& seconds() const { return seconds_; }

 private:
  static size_t Kind(uint64_t tag) { return std::min<size_t>(2, (tag >> 16) & 0xF); }
  PeerTransport& inner_;
  std::array<double, 3> seconds_{};
};

struct Result {
  double seconds = 0;                 // wall time of the prefill, all ranks
  std::array<double, 3> blocked{};    // mean over ranks of their host seconds in each exchange kind
};

// One prefill of `prompt` over `pieces` (empty: one rank, no exchanges).
absl::StatusOr<Result> Prefill(const std::vector<std::unique_ptr<Engine>>& engines, const std::vector<int32_t>& prompt,
                               const std::vector<ShardPiece>& pieces, bool nccl) {
  int size = 1;
  for (const ShardPiece& p : pieces) size = std::max(size, p.rank + 1);
  const int devices = static_cast<int>(engines.size());
  std::vector<std::vector<int32_t>> ids(size);  // (ranks): each rank's tokens, its pieces in order
  std::vector<int64_t> first(size, 0);           // (ranks): where each rank's first piece begins
  if (pieces.empty()) {
    ids[0] = prompt;
  } else {
    std::vector<bool> seen(size, false);
    for (const ShardPiece& p : pieces) {
      if (!seen[p.rank]) first[p.rank] = p.begin;
      seen[p.rank] = true;
      ids[p.rank].insert(ids[p.rank].end(), prompt.begin() + p.begin, prompt.begin() + p.end);
    }
  }
  std::vector<std::unique_ptr<ShardState>> states;
  for (int r = 0; r < size; ++r) {
    ASSIGN_OR_RETURN(std::unique_ptr<ShardState> s,
                     engines[r % devices]->NewState(first[r], static_cast<int64_t>(ids[r].size())));
    states.push_back(std::move(s));
  }
  std::vector<std::unique_ptr<PeerTransport>> inner(size);
  if (size > 1 && nccl) {
#ifdef TESSERA_HAVE_NCCL
    ASSIGN_OR_RETURN(const std::string unique_id, NewNcclUniqueId());
    std::vector<absl::StatusOr<std::shared_ptr<NcclCommunicator>>> comms(size, absl::UnknownError("not formed"));
    std::vector<std::thread> joining;
    for (int r = 0; r < size; ++r) {
      joining.emplace_back([&, r] { comms[r] = NcclCommunicator::Init(unique_id, size, r, r, kPeerTimeout); });
    }
    for (std::thread& t : joining) t.join();
    for (int r = 0; r < size; ++r) {
      if (!comms[r].ok()) return comms[r].status();
      inner[r] = std::make_unique<NcclTransport>(*comms[r], kPeerTimeout, nullptr, nullptr);
    }
#else
    return absl::UnimplementedError("built without NCCL");
#endif
  } else if (size > 1) {
    auto mailbox = std::make_shared<Mailbox>();
    for (int r = 0; r < size; ++r) {
      inner[r] = std::make_unique<InProcessTransport>(mailbox, "bench", r, size, kPeerTimeout);
    }
  }
  std::vector<std::unique_ptr<TimedTransport>> timed(size);
  for (int r = 0; r < size && size > 1; ++r) timed[r] = std::make_unique<TimedTransport>(*inner[r]);
  std::vector<absl::Status> status(size);
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> ranks;
  for (int r = 0; r < size; ++r) {
    ranks.emplace_back([&, r] {
      if (cudaSetDevice(r % devices) != cudaSuccess) {
        status[r] = absl::InternalError("cudaSetDevice failed");
        return;
      }
      ShardContext ctx;
      if (size > 1) {
        ctx.peers = timed[r].get();
        ctx.pieces = pieces;
      }
      const bool decoder = pieces.empty() || r == pieces.back().rank;
      status[r] = engines[r % devices]
                      ->Forward(*states[r], ids[r], decoder ? LogitsRows::kLast : LogitsRows::kNone, ctx)
                      .status();
    });
  }
  for (std::thread& t : ranks) t.join();
  Result result;
  result.seconds = SecondsSince(start);
  for (int r = 0; r < size; ++r) {
    RETURN_IF_ERROR(status[r]);
    for (size_t k = 0; k < 3 && size > 1; ++k) result.blocked[k] += timed[r]->seconds()[k] / size;
  }
  return result;
}

int Main(int argc, char** argv) {
  EngineFlags engine_flags;
  int64_t length = 65536;
  int max_workers = 2;
  int repeats = 3;
  int devices = 0;  // 0: every visible GPU
  std::vector<std::string> layouts = {"contiguous", "zigzag"};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    const FlagParse parsed = ParseEngineFlag(flag, value, engine_flags);
    if (parsed == FlagParse::kTaken) continue;
    bool ok = parsed == FlagParse::kNotMine;
    if (flag == "--length") {
      ok = absl::SimpleAtoi(value, &length) && length > 0;
    } else if (flag == "--workers") {
      ok = absl::SimpleAtoi(value, &max_workers) && max_workers >= 1 && max_workers <= 64;
    } else if (flag == "--repeats") {
      ok = absl::SimpleAtoi(value, &repeats) && repeats >= 1;
    } else if (flag == "--devices") {
      ok = absl::SimpleAtoi(value, &devices) && devices >= 0;
    } else if (flag == "--layouts") {
      layouts = absl::StrSplit(value, ',');
      ok = std::all_of(layouts.begin(), layouts.end(),
                       [](const std::string& l) { return l == "contiguous" || l == "zigzag"; });
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad flag %s %s\n", flag.c_str(), value.c_str());
      return 2;
    }
  }
  if (engine_flags.model.empty()) {
    std::fprintf(stderr,
                 "usage: cp_scaling_bench --model DIR [--length N] [--workers W] [--layouts contiguous,zigzag] "
                 "[--repeats R] [--precision bf16|fp32] [--devices N]\n");
    return 2;
  }
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess || visible < 1) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  devices = devices == 0 ? visible : std::min(devices, visible);
  std::vector<std::unique_ptr<Engine>> engines;  // (devices)
  for (int d = 0; d < devices; ++d) {
    absl::StatusOr<std::unique_ptr<Engine>> engine = LoadCudaBenchEngine(engine_flags.model, engine_flags.type, d);
    Require(engine.status());
    engines.push_back(*std::move(engine));
  }
  const int64_t vocab = engines[0]->config().vocab_size;
  const int64_t chunk = engines[0]->config().mamba.chunk_size > 0 ? engines[0]->config().mamba.chunk_size : 1;
  std::printf("cp_scaling_bench: %lld tokens, %d GPU(s), %s, %d repeats (median)\n", static_cast<long long>(length),
              devices, engine_flags.type == ElementType::kBF16 ? "bf16" : "fp32", repeats);
  std::printf("| W | layout | exchange | prefill ms | efficiency T1/(W·TW) | conv tail | SSD summary | ring K/V |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  uint64_t seed = 17;
  double t1 = 0;
  for (int w = 1; w <= max_workers; ++w) {
    for (const std::string& layout : layouts) {
      if (w == 1 && layout != layouts.front()) continue;  // one rank: no layout
      const bool zigzag = layout == "zigzag" && w > 1;
      std::vector<ShardPiece> pieces;
      if (w > 1) {
        absl::StatusOr<std::vector<int64_t>> bounds = PlanShardBounds(length, chunk, zigzag ? 2 * w : w);
        Require(bounds.status());
        pieces = zigzag ? ZigzagPieces(*bounds) : ContiguousPieces(*bounds);
      }
      const bool nccl = w > 1 && w <= devices && devices > 1;
      std::vector<Result> runs;
      for (int rep = 0; rep <= repeats; ++rep) {  // the first warms up
        const std::vector<int32_t> prompt = RandomTokenIds(length, vocab, seed);
        absl::StatusOr<Result> r = Prefill(engines, prompt, pieces, nccl);
        if (!r.ok()) {
          std::fprintf(stderr, "W=%d %s: %s\n", w, layout.c_str(), r.status().ToString().c_str());
          return 1;
        }
        if (rep > 0) runs.push_back(*r);
      }
      std::sort(runs.begin(), runs.end(), [](const Result& a, const Result& b) { return a.seconds < b.seconds; });
      const Result& median = runs[runs.size() / 2];
      if (w == 1) t1 = median.seconds;
      std::printf("| %d | %s | %s | %.1f | %.3f | %.1f%% | %.1f%% | %.1f%% |\n", w, w == 1 ? "-" : layout.c_str(),
                  w == 1 ? "-" : nccl ? "nccl" : "host", median.seconds * 1e3, t1 / (w * median.seconds),
                  100 * median.blocked[0] / median.seconds, 100 * median.blocked[1] / median.seconds,
                  100 * median.blocked[2] / median.seconds);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace tessera::bench

int main(int argc, char** argv) { return tessera::bench::Main(argc, argv); }
