// NcclGroups: one communicator per group id and unique id, shared by
// concurrent requests; aborted or replaced ids are refused (single-use).
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/nccl/nccl_test_util.h"
#include "transport/nccl_groups.h"
#include "transport/nccl_transport.h"

namespace tessera {
namespace {

using nccl_test::DeviceBytes;
using nccl_test::kJoinTimeout;
using nccl_test::kOpTimeout;
using nccl_test::RunRanks;
using nccl_test::TestStream;

using NcclGroupsOneGpuTest = nccl_test::OneGpuTest;
using NcclGroupsTwoGpuTest = nccl_test::TwoGpuTest;

std::string NewId() {
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  EXPECT_TRUE(id.ok()) << id.status();
  return id.ok() ? *id : std::string();
}

TEST_F(NcclGroupsOneGpuTest, SameGroupTwiceIsTheSameCommunicator) {
  NcclGroups groups(0);
  const std::string id = NewId();
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> first = groups.GetOrJoin("g", id, 1, 0, kJoinTimeout, nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> second = groups.GetOrJoin("g", id, 1, 0, kJoinTimeout, nullptr);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->get(), second->get());

  absl::StatusOr<std::shared_ptr<NcclCommunicator>> other = groups.GetOrJoin("h", NewId(), 1, 0, kJoinTimeout, nullptr);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->get(), first->get());
}

TEST_F(NcclGroupsOneGpuTest, ConcurrentRequestsShareOneJoin) {
  NcclGroups groups(0);
  const std::string id = NewId();
  constexpr int kRequests = 8;
  std::vector<std::shared_ptr<NcclCommunicator>> comms(kRequests);
  RunRanks(kRequests, [&](int request) {
    absl::StatusOr<std::shared_ptr<NcclCommunicator>> comm = groups.GetOrJoin("g", id, 1, 0, kJoinTimeout, nullptr);
    EXPECT_TRUE(comm.ok()) << comm.status();
    if (comm.ok()) comms[request] = *comm;
  });
  for (const auto& comm : comms) EXPECT_EQ(comm.get(), comms[0].get());
}

TEST_F(NcclGroupsOneGpuTest, AbortedIdIsRefusedAndANewIdJoins) {
  NcclGroups groups(0);
  const std::string id = NewId();
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> first = groups.GetOrJoin("g", id, 1, 0, kJoinTimeout, nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  (*first)->Abort();

  absl::StatusOr<std::shared_ptr<NcclCommunicator>> again = groups.GetOrJoin("g", id, 1, 0, kJoinTimeout, nullptr);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kUnavailable) << again.status();

  absl::StatusOr<std::shared_ptr<NcclCommunicator>> fresh = groups.GetOrJoin("g", NewId(), 1, 0, kJoinTimeout, nullptr);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_NE(fresh->get(), first->get());
  EXPECT_FALSE((*fresh)->aborted());

  // Still spent after the group moved on.
  EXPECT_EQ(groups.GetOrJoin("g", id, 1, 0, kJoinTimeout, nullptr).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(NcclGroupsOneGpuTest, NewIdReplacesTheGroupAndTheOldOneIsSpent) {
  NcclGroups groups(0);
  const std::string old_id = NewId();
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> old_comm =
      groups.GetOrJoin("g", old_id, 1, 0, kJoinTimeout, nullptr);
  ASSERT_TRUE(old_comm.ok()) << old_comm.status();
  absl::StatusOr<std::shared_ptr<NcclCommunicator>> new_comm =
      groups.GetOrJoin("g", NewId(), 1, 0, kJoinTimeout, nullptr);
  ASSERT_TRUE(new_comm.ok()) << new_comm.status();
  EXPECT_NE(new_comm->get(), old_comm->get());
  EXPECT_FALSE((*old_comm)->aborted());  // a request still holding it may finish
  EXPECT_EQ(groups.GetOrJoin("g", old_id, 1, 0, kJoinTimeout, nullptr).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(NcclGroupsOneGpuTest, CachedIdWithAnotherRankIsRefused) {
  NcclGroups groups(0);
  const std::string id = NewId();
  ASSERT_TRUE(groups.GetOrJoin("g", id, 1, 0, kJoinTimeout, nullptr).ok());
  EXPECT_EQ(groups.GetOrJoin("g", id, 2, 1, kJoinTimeout, nullptr).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(NcclGroupsTwoGpuTest, TwoWorkersJoinOneGroupAndExchange) {
  const std::string id = NewId();
  const std::vector<float> data = {1.5f, -2.0f, 3.25f, 4.0f};  // rank r contributes data[2r], data[2r + 1]
  RunRanks(2, [&](int rank) {
    NcclGroups groups(rank);  // one worker per GPU
    absl::StatusOr<std::shared_ptr<NcclCommunicator>> comm =
        groups.GetOrJoin("request-group", id, 2, rank, kJoinTimeout, nullptr);
    ASSERT_TRUE(comm.ok()) << "rank " << rank << ": " << comm.status();
    NcclTransport transport(*comm, kOpTimeout, nullptr, nullptr);
    TestStream stream(rank);
    const std::vector<uint8_t> bytes(reinterpret_cast<const uint8_t*>(data.data()),
                                     reinterpret_cast<const uint8_t*>(data.data() + data.size()));
    const size_t half = bytes.size() / 2;
    DeviceBytes mine(stream.get(), std::vector<uint8_t>(bytes.begin() + rank * half, bytes.begin() + (rank + 1) * half));
    DeviceBytes all(stream.get(), bytes.size());
    ASSERT_TRUE(transport.AllGather(0, mine.get(), half, all.get(), stream.get()).ok());
    EXPECT_TRUE(all.Download() == bytes);

    // The next request of the group reuses the communicator.
    absl::StatusOr<std::shared_ptr<NcclCommunicator>> again =
        groups.GetOrJoin("request-group", id, 2, rank, kJoinTimeout, nullptr);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->get(), comm->get());
  });
}

}  // namespace
}  // namespace tessera
