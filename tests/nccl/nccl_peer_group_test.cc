// NcclPeerGroup: the host-staged PeerGroup methods (lengths that differ per
// rank, empty blocks, tags checked on Send/Recv) and the DeviceExchange
// pass-through, for a group of one and for two ranks on two GPUs.
#include "worker/nccl/nccl_peer_group.h"

#include <array>
#include <memory>

#include "gtest/gtest.h"
#include "tests/nccl/nccl_test_util.h"

namespace tessera {
namespace {

using nccl_test::DeviceBytes;
using nccl_test::FreshSeed;
using nccl_test::kJoinTimeout;
using nccl_test::kOpTimeout;
using nccl_test::RandomBytes;
using nccl_test::RandomFloats;
using nccl_test::RunRanks;
using nccl_test::TestStream;

using NcclPeerGroupOneGpuTest = nccl_test::OneGpuTest;
using NcclPeerGroupTwoGpuTest = nccl_test::TwoGpuTest;

std::shared_ptr<NcclCommunicator> Join(const std::string& id, int size, int rank) {
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> comm = NcclCommunicator::Init(id, size, rank, rank, kJoinTimeout);
  EXPECT_TRUE(comm.ok()) << "rank " << rank << ": " << comm.status();
  return comm.ok() ? *comm : nullptr;
}

TEST_F(NcclPeerGroupOneGpuTest, HostMethodsOfAGroupOfOne) {
  const uint64_t seed = FreshSeed();
  std::mt19937_64 rng(seed);
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  std::shared_ptr<NcclCommunicator> comm = Join(*id, 1, 0);
  ASSERT_NE(comm, nullptr);
  NcclPeerGroup group(comm, kOpTimeout, nullptr);
  EXPECT_EQ(group.rank(), 0);
  EXPECT_EQ(group.size(), 1);

  for (size_t n : {size_t{0}, size_t{1}, size_t{1237}}) {
    const std::vector<float> mine = RandomFloats(n, rng);
    absl::StatusOr<std::vector<std::vector<float>>> all =
        group.AllGather(ExchangeTag(0, ExchangeKind::kConvTail), mine);
    ASSERT_TRUE(all.ok()) << all.status();
    ASSERT_EQ(all->size(), 1u);
    EXPECT_EQ((*all)[0], mine) << "n " << n << ", seed " << seed;

    absl::StatusOr<std::vector<float>> shifted = group.RingShift(ExchangeTag(0, ExchangeKind::kRingKv, 1), mine);
    ASSERT_TRUE(shifted.ok()) << shifted.status();
    EXPECT_EQ(*shifted, mine) << "n " << n << ", seed " << seed;
  }

  const std::vector<float> block = RandomFloats(33, rng);
  ASSERT_TRUE(group.Send(0, 7, block).ok());
  ASSERT_TRUE(group.Send(0, 7, {}).ok());
  absl::StatusOr<std::vector<float>> first = group.Recv(0, 7);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, block);
  absl::StatusOr<std::vector<float>> second = group.Recv(0, 7);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->empty());
  EXPECT_EQ(group.Recv(0, 7).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(group.Send(1, 7, block).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(group.bytes_sent(), 0);  // nothing left this rank
}

TEST_F(NcclPeerGroupTwoGpuTest, HostAllGatherAndRingShiftOfUnequalLengths) {
  const uint64_t seed = FreshSeed();
  std::mt19937_64 rng(seed);
  // Floats per rank, per call: unequal, one empty, both empty, equal.
  const std::vector<std::array<size_t, 2>> lengths = {{1000, 37}, {0, 5001}, {0, 0}, {4096, 4096}, {3, 200000}};
  std::vector<std::array<std::vector<float>, 2>> data;  // (calls, rank)
  for (const auto& len : lengths) data.push_back({RandomFloats(len[0], rng), RandomFloats(len[1], rng)});
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();

  RunRanks(2, [&](int rank) {
    std::shared_ptr<NcclCommunicator> comm = Join(*id, 2, rank);
    if (comm == nullptr) return;
    NcclPeerGroup group(comm, kOpTimeout, nullptr);
    for (size_t i = 0; i < lengths.size(); ++i) {
      absl::StatusOr<std::vector<std::vector<float>>> all = group.AllGather(i, data[i][rank]);
      ASSERT_TRUE(all.ok()) << "rank " << rank << ": " << all.status();
      ASSERT_EQ(all->size(), 2u);
      EXPECT_EQ((*all)[0], data[i][0]) << "rank " << rank << ", call " << i << ", seed " << seed;
      EXPECT_EQ((*all)[1], data[i][1]) << "rank " << rank << ", call " << i << ", seed " << seed;

      absl::StatusOr<std::vector<float>> shifted = group.RingShift(i, data[i][rank]);
      ASSERT_TRUE(shifted.ok()) << "rank " << rank << ": " << shifted.status();
      EXPECT_EQ(*shifted, data[i][1 - rank]) << "rank " << rank << ", call " << i << ", seed " << seed;
    }
    EXPECT_GT(group.bytes_sent(), 0);
  });
}

TEST_F(NcclPeerGroupTwoGpuTest, HostSendRecvBothWaysWithTags) {
  const uint64_t seed = FreshSeed();
  std::mt19937_64 rng(seed);
  const std::vector<float> to_one = RandomFloats(12345, rng);
  const std::vector<float> to_zero = RandomFloats(7, rng);
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();

  RunRanks(2, [&](int rank) {
    std::shared_ptr<NcclCommunicator> comm = Join(*id, 2, rank);
    if (comm == nullptr) return;
    NcclPeerGroup group(comm, kOpTimeout, nullptr);
    const uint64_t tag_a = ExchangeTag(3, ExchangeKind::kRingKv, 1);
    const uint64_t tag_b = ExchangeTag(3, ExchangeKind::kRingKv, 2);
    if (rank == 0) {
      ASSERT_TRUE(group.Send(1, tag_a, to_one).ok());
      absl::StatusOr<std::vector<float>> got = group.Recv(1, tag_b);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, to_zero) << "seed " << seed;
      ASSERT_TRUE(group.Send(1, tag_a, {}).ok());
      EXPECT_EQ(group.bytes_sent(), static_cast<int64_t>(2 * 16 + to_one.size() * sizeof(float)));
    } else {
      absl::StatusOr<std::vector<float>> got = group.Recv(0, tag_a);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, to_one) << "seed " << seed;
      ASSERT_TRUE(group.Send(0, tag_b, to_zero).ok());
      absl::StatusOr<std::vector<float>> empty = group.Recv(0, tag_a);
      ASSERT_TRUE(empty.ok()) << empty.status();
      EXPECT_TRUE(empty->empty());
    }
  });
}

TEST_F(NcclPeerGroupTwoGpuTest, RecvOfAnotherTagFailsAndAborts) {
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  RunRanks(2, [&](int rank) {
    std::shared_ptr<NcclCommunicator> comm = Join(*id, 2, rank);
    if (comm == nullptr) return;
    NcclPeerGroup group(comm, kOpTimeout, nullptr);
    if (rank == 0) {
      EXPECT_TRUE(group.Send(1, 5, {}).ok());  // header only: completes on its own
    } else {
      const absl::Status status = group.Recv(0, 6).status();
      EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
      EXPECT_TRUE(comm->aborted());
    }
  });
}

TEST_F(NcclPeerGroupTwoGpuTest, DeviceExchangeGoesThroughTheCommunicator) {
  const uint64_t seed = FreshSeed();
  std::mt19937_64 rng(seed);
  const std::array<std::vector<uint8_t>, 2> data = {RandomBytes(999, rng), RandomBytes(999, rng)};
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  RunRanks(2, [&](int rank) {
    std::shared_ptr<NcclCommunicator> comm = Join(*id, 2, rank);
    if (comm == nullptr) return;
    NcclPeerGroup group(comm, kOpTimeout, nullptr);
    DeviceExchange* exchange = group.device_exchange();
    ASSERT_NE(exchange, nullptr);
    TestStream stream(rank);
    DeviceBytes mine(stream.get(), data[rank]);
    DeviceBytes all(stream.get(), 2 * 999);
    ASSERT_TRUE(exchange->AllGather(1, mine.get(), 999, all.get(), stream.get()).ok());
    std::vector<uint8_t> expected = data[0];
    expected.insert(expected.end(), data[1].begin(), data[1].end());
    EXPECT_TRUE(all.Download() == expected) << "rank " << rank << ", seed " << seed;

    DeviceBytes recv(stream.get(), 999);
    ASSERT_TRUE(exchange->RingShift(2, mine.get(), 999, recv.get(), 999, stream.get()).ok());
    EXPECT_TRUE(recv.Download() == data[1 - rank]) << "rank " << rank << ", seed " << seed;
    EXPECT_EQ(group.bytes_sent(), 2 * 999);
  });
}

}  // namespace
}  // namespace tessera
