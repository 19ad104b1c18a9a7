// NcclCommunicator on real GPUs: a group of one on any GPU, two ranks on two
// GPUs (threads of this process), and the failure paths (a silent peer, a
// cancel, an abort from another thread, a group that never forms), each of
// which must end in a status within its timeout plus slack, never a hang.
#include "transport/nccl_communicator.h"

#include <array>
#include <atomic>
#include <latch>
#include <memory>
#include <thread>

#include "gtest/gtest.h"
#include "tests/nccl/nccl_test_util.h"

namespace tessera {
namespace {

using nccl_test::DeviceBytes;
using nccl_test::FreshSeed;
using nccl_test::kJoinTimeout;
using nccl_test::kOpTimeout;
using nccl_test::kShortTimeout;
using nccl_test::kSlack;
using nccl_test::MillisSince;
using nccl_test::RandomBytes;
using nccl_test::RunRanks;
using nccl_test::TestStream;
using Clock = std::chrono::steady_clock;

using NcclCommunicatorOneGpuTest = nccl_test::OneGpuTest;
using NcclCommunicatorTwoGpuTest = nccl_test::TwoGpuTest;

std::shared_ptr<NcclCommunicator> JoinAlone() {
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  EXPECT_TRUE(id.ok()) << id.status();
  if (!id.ok()) return nullptr;
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> comm = NcclCommunicator::Init(*id, 1, 0, 0, kJoinTimeout);
  EXPECT_TRUE(comm.ok()) << comm.status();
  return comm.ok() ? *comm : nullptr;
}

// Joins rank `rank` of a two-rank group on device `rank`.
std::shared_ptr<NcclCommunicator> JoinPair(const std::string& id, int rank) {
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> comm = NcclCommunicator::Init(id, 2, rank, rank, kJoinTimeout);
  EXPECT_TRUE(comm.ok()) << "rank " << rank << ": " << comm.status();
  return comm.ok() ? *comm : nullptr;
}

TEST_F(NcclCommunicatorOneGpuTest, SizeOneAllGatherIsIdentity) {
  const uint64_t seed = FreshSeed();
  std::mt19937_64 rng(seed);
  std::shared_ptr<NcclCommunicator> comm = JoinAlone();
  ASSERT_NE(comm, nullptr);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->rank(), 0);
  TestStream stream(0);
  for (size_t bytes : {size_t{1}, size_t{4093}, (size_t{1} << 20) + 17}) {
    const std::vector<uint8_t> data = RandomBytes(bytes, rng);
    DeviceBytes mine(stream.get(), data);
    DeviceBytes all(stream.get(), bytes);  // (1 · bytes)
    ASSERT_TRUE(comm->AllGather(mine.get(), bytes, all.get(), stream.get(), kOpTimeout, nullptr).ok());
    EXPECT_TRUE(all.Download() == data) << "bytes " << bytes << ", seed " << seed;
  }
}

TEST_F(NcclCommunicatorOneGpuTest, SizeOneRingShiftSendsToItself) {
  const uint64_t seed = FreshSeed();
  std::mt19937_64 rng(seed);
  std::shared_ptr<NcclCommunicator> comm = JoinAlone();
  ASSERT_NE(comm, nullptr);
  TestStream stream(0);
  for (size_t bytes : {size_t{3}, size_t{65537}, size_t{0}}) {
    const std::vector<uint8_t> data = RandomBytes(bytes, rng);
    DeviceBytes send(stream.get(), data);
    DeviceBytes recv(stream.get(), bytes);
    ASSERT_TRUE(comm->RingShift(send.get(), bytes, recv.get(), bytes, stream.get(), kOpTimeout, nullptr).ok());
    EXPECT_TRUE(recv.Download() == data) << "bytes " << bytes << ", seed " << seed;
  }
}

TEST_F(NcclCommunicatorOneGpuTest, SizeOneRingShiftOfUnequalSizesIsRefusedWithoutAbort) {
  std::shared_ptr<NcclCommunicator> comm = JoinAlone();
  ASSERT_NE(comm, nullptr);
  TestStream stream(0);
  DeviceBytes send(stream.get(), 64);
  DeviceBytes recv(stream.get(), 64);
  const absl::Status status = comm->RingShift(send.get(), 64, recv.get(), 32, stream.get(), kOpTimeout, nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_FALSE(comm->aborted());
  EXPECT_TRUE(comm->RingShift(send.get(), 64, recv.get(), 64, stream.get(), kOpTimeout, nullptr).ok());
}

TEST_F(NcclCommunicatorOneGpuTest, InitRefusesMalformedIdAndRank) {
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->size(), 128u);
  EXPECT_EQ(NcclCommunicator::Init("short", 1, 0, 0, kJoinTimeout).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NcclCommunicator::Init(*id, 2, 2, 0, kJoinTimeout).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NcclCommunicator::Init(*id, 0, 0, 0, kJoinTimeout).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(NcclCommunicatorOneGpuTest, InitWithOnlyOneOfTwoRanksTimesOut) {
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  const Clock::time_point start = Clock::now();
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> comm = NcclCommunicator::Init(*id, 2, 0, 0, kShortTimeout);
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kUnavailable) << comm.status();
  EXPECT_LT(MillisSince(start), kShortTimeout + kSlack);
}

TEST_F(NcclCommunicatorOneGpuTest, InitCancelledWhileWaitingForAPeer) {
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancelled = true;
  });
  const Clock::time_point start = Clock::now();
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> comm = NcclCommunicator::Init(*id, 2, 0, 0, kOpTimeout, &cancelled);
  canceller.join();
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kCancelled) << comm.status();
  EXPECT_LT(MillisSince(start), kSlack * 4);
}

TEST_F(NcclCommunicatorOneGpuTest, AbortIsIdempotentAndLaterCallsFailAtOnce) {
  std::shared_ptr<NcclCommunicator> comm = JoinAlone();
  ASSERT_NE(comm, nullptr);
  comm->Abort();
  comm->Abort();
  EXPECT_TRUE(comm->aborted());
  TestStream stream(0);
  DeviceBytes mine(stream.get(), 16);
  DeviceBytes all(stream.get(), 16);
  const Clock::time_point start = Clock::now();
  const absl::Status status = comm->AllGather(mine.get(), 16, all.get(), stream.get(), kOpTimeout, nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_LT(MillisSince(start), std::chrono::milliseconds(1000));
}

TEST_F(NcclCommunicatorOneGpuTest, CallWithCancelAlreadySetAborts) {
  std::shared_ptr<NcclCommunicator> comm = JoinAlone();
  ASSERT_NE(comm, nullptr);
  TestStream stream(0);
  DeviceBytes mine(stream.get(), 16);
  DeviceBytes all(stream.get(), 16);
  const std::atomic<bool> cancelled{true};
  const absl::Status status = comm->AllGather(mine.get(), 16, all.get(), stream.get(), kOpTimeout, &cancelled);
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_TRUE(comm->aborted());
}

TEST_F(NcclCommunicatorTwoGpuTest, AllGatherOfAwkwardByteCounts) {
  const uint64_t seed = FreshSeed();
  std::mt19937_64 rng(seed);
  const std::vector<size_t> sizes = {1, 3, 4093, (size_t{1} << 20) + 17, 8};
  std::vector<std::array<std::vector<uint8_t>, 2>> data;  // (sizes, rank)
  for (size_t bytes : sizes) data.push_back({RandomBytes(bytes, rng), RandomBytes(bytes, rng)});
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();

  RunRanks(2, [&](int rank) {
    std::shared_ptr<NcclCommunicator> comm = JoinPair(*id, rank);
    if (comm == nullptr) return;
    TestStream stream(rank);
    for (size_t i = 0; i < sizes.size(); ++i) {
      DeviceBytes mine(stream.get(), data[i][rank]);
      DeviceBytes all(stream.get(), 2 * sizes[i]);  // (2 · bytes)
      const absl::Status status = comm->AllGather(mine.get(), sizes[i], all.get(), stream.get(), kOpTimeout, nullptr);
      ASSERT_TRUE(status.ok()) << "rank " << rank << ": " << status;
      std::vector<uint8_t> expected = data[i][0];
      expected.insert(expected.end(), data[i][1].begin(), data[i][1].end());
      EXPECT_TRUE(all.Download() == expected) << "rank " << rank << ", bytes " << sizes[i] << ", seed " << seed;
    }
  });
}

TEST_F(NcclCommunicatorTwoGpuTest, RingShiftOfUnequalByteCountsBothWays) {
  const uint64_t seed = FreshSeed();
  std::mt19937_64 rng(seed);
  // What rank 0 and rank 1 send, per call: unequal, one-sided, large, equal.
  const std::vector<std::array<size_t, 2>> lengths = {
      {1000, 37}, {0, 5000}, {(size_t{4} << 20) + 3, 1}, {4096, 4096}, {7, 0}};
  std::vector<std::array<std::vector<uint8_t>, 2>> data;  // (calls, rank)
  for (const auto& len : lengths) data.push_back({RandomBytes(len[0], rng), RandomBytes(len[1], rng)});
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();

  RunRanks(2, [&](int rank) {
    std::shared_ptr<NcclCommunicator> comm = JoinPair(*id, rank);
    if (comm == nullptr) return;
    TestStream stream(rank);
    const int prev = 1 - rank;  // rank - 1 around a ring of two
    for (size_t i = 0; i < lengths.size(); ++i) {
      DeviceBytes send(stream.get(), data[i][rank]);
      DeviceBytes recv(stream.get(), lengths[i][prev]);
      const absl::Status status = comm->RingShift(send.get(), lengths[i][rank], recv.get(), lengths[i][prev],
                                                  stream.get(), kOpTimeout, nullptr);
      ASSERT_TRUE(status.ok()) << "rank " << rank << ": " << status;
      EXPECT_TRUE(recv.Download() == data[i][prev]) << "rank " << rank << ", call " << i << ", seed " << seed;
    }
  });
}

TEST_F(NcclCommunicatorTwoGpuTest, ManyOperationsInARow) {
  const uint64_t seed = FreshSeed();
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  constexpr int kRounds = 20;
  RunRanks(2, [&](int rank) {
    std::shared_ptr<NcclCommunicator> comm = JoinPair(*id, rank);
    if (comm == nullptr) return;
    TestStream stream(rank);
    for (int round = 0; round < kRounds; ++round) {
      // Both ranks draw the same numbers: each knows what the other sends.
      std::mt19937_64 rng(seed + round);
      const size_t bytes = 1 + rng() % 70000;
      const std::array<std::vector<uint8_t>, 2> data = {RandomBytes(bytes, rng), RandomBytes(bytes + round, rng)};
      DeviceBytes mine(stream.get(), data[rank]);
      DeviceBytes all(stream.get(), 2 * bytes);
      ASSERT_TRUE(comm->AllGather(mine.get(), bytes, all.get(), stream.get(), kOpTimeout, nullptr).ok());
      std::vector<uint8_t> expected(data[0]);
      expected.insert(expected.end(), data[1].begin(), data[1].begin() + static_cast<std::ptrdiff_t>(bytes));
      EXPECT_TRUE(all.Download() == expected) << "rank " << rank << ", round " << round << ", seed " << seed;

      DeviceBytes send(stream.get(), data[rank]);
      DeviceBytes recv(stream.get(), data[1 - rank].size());
      ASSERT_TRUE(comm->RingShift(send.get(), data[rank].size(), recv.get(), data[1 - rank].size(), stream.get(),
                                  kOpTimeout, nullptr)
                      .ok());
      EXPECT_TRUE(recv.Download() == data[1 - rank]) << "rank " << rank << ", round " << round << ", seed " << seed;
    }
  });
}

// Rank 0 calls, rank 1 stays silent (alive, holding its communicator) until
// rank 0 is done. `warm_up`: one collective together first, so the silent
// call waits in the kernel rather than in connection setup.
enum class SilentPeerEnd { kTimeout, kCancel, kAbort };
void RunWithSilentPeer(bool warm_up, SilentPeerEnd end) {
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  std::latch rank0_done(1);
  RunRanks(2, [&](int rank) {
    std::shared_ptr<NcclCommunicator> comm = JoinPair(*id, rank);
    if (comm == nullptr) {
      if (rank == 0) rank0_done.count_down();
      return;
    }
    TestStream stream(rank);
    DeviceBytes mine(stream.get(), 256);
    DeviceBytes all(stream.get(), 2 * 256);
    if (warm_up) {
      EXPECT_TRUE(comm->AllGather(mine.get(), 256, all.get(), stream.get(), kOpTimeout, nullptr).ok());
    }
    if (rank == 1) {
      rank0_done.wait();
      return;
    }
    std::atomic<bool> cancelled{false};
    std::thread interrupter;
    std::chrono::milliseconds timeout = kShortTimeout;
    absl::StatusCode expected = absl::StatusCode::kUnavailable;
    if (end != SilentPeerEnd::kTimeout) {
      timeout = kOpTimeout;
      if (end == SilentPeerEnd::kCancel) expected = absl::StatusCode::kCancelled;
      interrupter = std::thread([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        if (end == SilentPeerEnd::kCancel) {
          cancelled = true;
        } else {
          comm->Abort();
        }
      });
    }
    const Clock::time_point start = Clock::now();
    const absl::Status status = comm->AllGather(mine.get(), 256, all.get(), stream.get(), timeout, &cancelled);
    const std::chrono::milliseconds took = MillisSince(start);
    if (interrupter.joinable()) interrupter.join();
    EXPECT_EQ(status.code(), expected) << status;
    EXPECT_LT(took, (end == SilentPeerEnd::kTimeout ? kShortTimeout : std::chrono::milliseconds(0)) + kSlack);
    EXPECT_TRUE(comm->aborted());

    const Clock::time_point again = Clock::now();
    const absl::Status later = comm->AllGather(mine.get(), 256, all.get(), stream.get(), kOpTimeout, nullptr);
    EXPECT_EQ(later.code(), absl::StatusCode::kUnavailable) << later;
    EXPECT_LT(MillisSince(again), std::chrono::milliseconds(1000));
    const absl::Status shift = comm->RingShift(mine.get(), 8, all.get(), 8, stream.get(), kOpTimeout, nullptr);
    EXPECT_EQ(shift.code(), absl::StatusCode::kUnavailable) << shift;
    rank0_done.count_down();
    // The stream may still hold the aborted kernel: it and the buffers are
    // dropped in stream order, never synchronized.
  });
}

TEST_F(NcclCommunicatorTwoGpuTest, SilentPeerTimesOutAndLaterCallsFailAtOnce) {
  RunWithSilentPeer(/*warm_up=*/true, SilentPeerEnd::kTimeout);
}

TEST_F(NcclCommunicatorTwoGpuTest, SilentPeerOnTheFirstCollectiveTimesOut) {
  RunWithSilentPeer(/*warm_up=*/false, SilentPeerEnd::kTimeout);
}

TEST_F(NcclCommunicatorTwoGpuTest, CancelFromAnotherThreadEndsTheCall) {
  RunWithSilentPeer(/*warm_up=*/true, SilentPeerEnd::kCancel);
}

TEST_F(NcclCommunicatorTwoGpuTest, AbortFromAnotherThreadEndsTheCall) {
  RunWithSilentPeer(/*warm_up=*/true, SilentPeerEnd::kAbort);
}

}  // namespace
}  // namespace tessera
