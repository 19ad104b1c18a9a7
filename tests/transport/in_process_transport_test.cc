// The collectives over mailbox posts (mailbox_transport.h), through the
// in-process transport: every rank gets every contribution in rank order,
// ring blocks of different sizes reach rank + 1, a block of the wrong size is
// INTERNAL rather than truncated, a silent peer is UNAVAILABLE at the
// timeout, and split-KV queries go to every other rank in order.
#include "transport/in_process_transport.h"

#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tessera {
namespace {

using std::chrono::milliseconds;

std::vector<char> RandomBytes(size_t n, std::mt19937_64& rng) {
  std::vector<char> bytes(n);
  for (char& b : bytes) b = static_cast<char>(rng());
  return bytes;
}

// Runs `body(rank, transport)` on one thread per rank of a fresh group.
void RunRanks(int size, const std::function<void(int, InProcessTransport&)>& body,
              InProcessKvAnswer answer = {}, milliseconds timeout = milliseconds(10000)) {
  auto mailbox = std::make_shared<Mailbox>();
  std::vector<std::unique_ptr<InProcessTransport>> transports;
  for (int r = 0; r < size; ++r) {
    transports.push_back(std::make_unique<InProcessTransport>(mailbox, "req", r, size, timeout, answer));
  }
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) threads.emplace_back([&, r] { body(r, *transports[r]); });
  for (std::thread& t : threads) t.join();
}

TEST(InProcessTransportTest, AllGatherAndRingShiftAtEveryGroupSize) {
  const uint64_t seed = std::random_device{}();
  for (int size = 1; size <= 4; ++size) {
    std::mt19937_64 rng(seed + size);
    std::vector<std::vector<char>> gather(size), ring(size);
    for (int r = 0; r < size; ++r) {
      gather[r] = RandomBytes(37, rng);
      ring[r] = RandomBytes(size == 1 ? 11 : 5 + 13 * r, rng);  // unequal sizes around the ring
    }
    RunRanks(size, [&](int rank, InProcessTransport& t) {
      std::vector<char> all(37 * size, 0);
      ASSERT_TRUE(t.AllGather(1, gather[rank].data(), 37, all.data(), nullptr).ok());
      for (int r = 0; r < size; ++r) {
        EXPECT_TRUE(std::equal(gather[r].begin(), gather[r].end(), all.begin() + 37 * r))
            << "size " << size << " rank " << rank << " from " << r << " seed " << seed;
      }
      const int previous = (rank + size - 1) % size;
      std::vector<char> received(ring[previous].size(), 0);
      ASSERT_TRUE(t.RingShift(2, ring[rank].data(), ring[rank].size(), received.data(), received.size(), nullptr).ok());
      EXPECT_EQ(received, ring[previous]) << "size " << size << " rank " << rank << " seed " << seed;
    });
  }
}

// A ring block longer than the transport's piece travels in pieces (a shard's
// K/V is more than one gRPC message carries): cut alike on both sides,
// whatever each neighbour's block size, and put back together in order.
TEST(InProcessTransportTest, LongRingBlocksTravelInPieces) {
  const uint64_t seed = std::random_device{}();
  std::mt19937_64 rng(seed);
  const int size = 3;
  std::vector<std::vector<char>> ring = {RandomBytes(100, rng), RandomBytes(7, rng), RandomBytes(0, rng)};
  RunRanks(size, [&](int rank, InProcessTransport& t) {
    t.set_ring_piece_bytes(7);  // 100 bytes: 15 pieces, the last of 2; 7: one; 0: one empty
    const int previous = (rank + size - 1) % size;
    std::vector<char> received(ring[previous].size(), 0);
    ASSERT_TRUE(t.RingShift(ExchangeTag(3, ExchangeKind::kRingKv, 2), ring[rank].data(), ring[rank].size(),
                            received.data(), received.size(), nullptr)
                    .ok());
    EXPECT_EQ(received, ring[previous]) << "rank " << rank << " seed " << seed;
  });
  // More pieces than a tag can name: refused before anything is sent.
  RunRanks(2, [&](int, InProcessTransport& t) {
    t.set_ring_piece_bytes(1);
    std::vector<char> block(kMaxTagPieces + 1, 'x'), received(kMaxTagPieces + 1);
    EXPECT_EQ(t.RingShift(5, block.data(), block.size(), received.data(), received.size(), nullptr).code(),
              absl::StatusCode::kInvalidArgument);
  });
}

TEST(InProcessTransportTest, ABlockOfTheWrongSizeIsInternal) {
  // The ranks disagree on the contribution size: each receives a block of
  // the size it did not expect.
  RunRanks(2, [](int rank, InProcessTransport& t) {
    const size_t bytes = rank == 0 ? 8 : 12;
    const std::vector<char> mine(bytes, 'x');
    std::vector<char> all(2 * bytes);
    const absl::Status status = t.AllGather(3, mine.data(), bytes, all.data(), nullptr);
    EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << "rank " << rank << ": " << status;
  });
  // Rank 0 sends a 12-byte ring block where rank 1 expects 8.
  RunRanks(2, [](int rank, InProcessTransport& t) {
    std::vector<char> send(12, 'y'), recv(8);
    const absl::Status status = t.RingShift(4, send.data(), rank == 0 ? 12 : 8, recv.data(), 8, nullptr);
    if (rank == 1) EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  });
}

TEST(InProcessTransportTest, ASilentPeerIsUnavailableAtTheTimeout) {
  RunRanks(2, [](int rank, InProcessTransport& t) {
    if (rank == 1) return;  // never takes part
    char mine = 'a';
    char all[2];
    const auto start = std::chrono::steady_clock::now();
    const absl::Status status = t.AllGather(5, &mine, 1, all, nullptr);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));
  }, {}, milliseconds(100));
}

TEST(InProcessTransportTest, QueriesGoToEveryOtherRankInOrder) {
  const InProcessKvAnswer answer = [](int holder, int64_t slot, absl::Span<const float> q, int64_t q_len,
                                      int64_t q_position0) -> absl::StatusOr<AttentionPartial> {
    AttentionPartial part;
    part.out = {static_cast<float>(holder), static_cast<float>(slot), q[0]};
    part.lse = {static_cast<float>(q_len), static_cast<float>(q_position0)};
    return part;
  };
  RunRanks(3, [](int rank, InProcessTransport& t) {
    if (rank != 2) return;
    const std::vector<float> q = {7.0f};
    absl::StatusOr<std::vector<AttentionPartial>> parts = t.QueryKv(4, q, 1, 99);
    ASSERT_TRUE(parts.ok()) << parts.status();
    ASSERT_EQ(parts->size(), 2u);
    for (int holder = 0; holder < 2; ++holder) {
      EXPECT_EQ((*parts)[holder].out, (std::vector<float>{static_cast<float>(holder), 4.0f, 7.0f}));
      EXPECT_EQ((*parts)[holder].lse, (std::vector<float>{1.0f, 99.0f}));
    }
  }, answer);
  RunRanks(2, [](int rank, InProcessTransport& t) {
    const std::vector<float> q = {1.0f};
    EXPECT_EQ(t.QueryKv(0, q, 1, 0).status().code(), absl::StatusCode::kFailedPrecondition);
  });
}

}  // namespace
}  // namespace tessera
