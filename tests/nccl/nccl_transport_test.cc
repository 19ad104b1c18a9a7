// NcclTransport: AllGather and RingShift go straight through the communicator
// on device memory (one rank, and two ranks on two GPUs), bytes sent are
// counted in the peer metrics, and split-KV queries go to the query transport.
#include "transport/nccl_transport.h"

#include <array>
#include <memory>

#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "tests/nccl/nccl_test_util.h"

namespace tessera {
namespace {

using nccl_test::DeviceBytes;
using nccl_test::FreshSeed;
using nccl_test::kJoinTimeout;
using nccl_test::kOpTimeout;
using nccl_test::RandomBytes;
using nccl_test::RunRanks;
using nccl_test::TestStream;

using NcclTransportOneGpuTest = nccl_test::OneGpuTest;
using NcclTransportTwoGpuTest = nccl_test::TwoGpuTest;

std::shared_ptr<NcclCommunicator> Join(const std::string& id, int size, int rank) {
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> comm = NcclCommunicator::Init(id, size, rank, rank, kJoinTimeout);
  EXPECT_TRUE(comm.ok()) << "rank " << rank << ": " << comm.status();
  return comm.ok() ? *comm : nullptr;
}

// Answers every query with one partial whose first value names the slot.
class FakeQueries final : public PeerTransport {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  BufferSpace space() const override { return BufferSpace::kHost; }
  absl::Status AllGather(uint64_t, const void*, size_t, void*, CudaStream) override {
    return absl::InternalError("not for gathers");
  }
  absl::Status RingShift(uint64_t, const void*, size_t, void*, size_t, CudaStream) override {
    return absl::InternalError("not for ring shifts");
  }
  absl::StatusOr<std::vector<AttentionPartial>> QueryKv(int64_t slot, absl::Span<const float> q, int64_t, int64_t) override {
    AttentionPartial part;
    part.out.assign(q.begin(), q.end());
    part.lse.assign(1, static_cast<float>(slot));
    return std::vector<AttentionPartial>{part};
  }
};

TEST_F(NcclTransportOneGpuTest, AGroupOfOneCopiesAndQueriesGoToTheQueryTransport) {
  const uint64_t seed = FreshSeed();
  std::mt19937_64 rng(seed);
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  std::shared_ptr<NcclCommunicator> comm = Join(*id, 1, 0);
  ASSERT_NE(comm, nullptr);
  NcclTransport transport(comm, kOpTimeout, nullptr, std::make_unique<FakeQueries>());
  EXPECT_EQ(transport.rank(), 0);
  EXPECT_EQ(transport.size(), 1);
  EXPECT_EQ(transport.space(), BufferSpace::kDevice);

  TestStream stream(0);
  const std::vector<uint8_t> data = RandomBytes(1237, rng);
  DeviceBytes mine(stream.get(), data);
  DeviceBytes all(stream.get(), data.size());
  ASSERT_TRUE(transport.AllGather(0, mine.get(), data.size(), all.get(), stream.get()).ok());
  EXPECT_TRUE(all.Download() == data) << "seed " << seed;
  DeviceBytes recv(stream.get(), data.size());
  ASSERT_TRUE(transport.RingShift(1, mine.get(), data.size(), recv.get(), data.size(), stream.get()).ok());
  EXPECT_TRUE(recv.Download() == data) << "seed " << seed;

  const std::vector<float> q = {1.0f, 2.0f};
  absl::StatusOr<std::vector<AttentionPartial>> parts = transport.QueryKv(5, q, 1, 10);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].out, q);
  EXPECT_EQ((*parts)[0].lse, std::vector<float>{5.0f});

  NcclTransport without_queries(comm, kOpTimeout, nullptr, nullptr);
  EXPECT_EQ(without_queries.QueryKv(0, q, 1, 0).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(NcclTransportTwoGpuTest, DeviceExchangesGoThroughTheCommunicatorAndAreCounted) {
  const uint64_t seed = FreshSeed();
  std::mt19937_64 rng(seed);
  const std::array<std::vector<uint8_t>, 2> data = {RandomBytes(999, rng), RandomBytes(999, rng)};
  const std::array<size_t, 2> ring_bytes = {4096, 37};  // rank r sends ring_bytes[r]
  const std::array<std::vector<uint8_t>, 2> ring = {RandomBytes(ring_bytes[0], rng), RandomBytes(ring_bytes[1], rng)};
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  RunRanks(2, [&](int rank) {
    std::shared_ptr<NcclCommunicator> comm = Join(*id, 2, rank);
    if (comm == nullptr) return;
    prometheus::Registry registry;
    PeerMetrics metrics(registry);
    NcclTransport transport(comm, kOpTimeout, nullptr, nullptr, &metrics);
    TestStream stream(rank);
    DeviceBytes mine(stream.get(), data[rank]);
    DeviceBytes all(stream.get(), 2 * 999);
    ASSERT_TRUE(transport.AllGather(1, mine.get(), 999, all.get(), stream.get()).ok());
    std::vector<uint8_t> expected = data[0];
    expected.insert(expected.end(), data[1].begin(), data[1].end());
    EXPECT_TRUE(all.Download() == expected) << "rank " << rank << ", seed " << seed;

    DeviceBytes send(stream.get(), ring[rank]);
    DeviceBytes recv(stream.get(), ring_bytes[1 - rank]);
    ASSERT_TRUE(transport.RingShift(2, send.get(), ring_bytes[rank], recv.get(), ring_bytes[1 - rank], stream.get())
                    .ok());
    EXPECT_TRUE(recv.Download() == ring[1 - rank]) << "rank " << rank << ", seed " << seed;
    EXPECT_EQ(metrics.nccl_bytes.Value(), static_cast<double>(999 + ring_bytes[rank]));
  });
}

}  // namespace
}  // namespace tessera
