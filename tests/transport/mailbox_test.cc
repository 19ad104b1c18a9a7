// The mailbox that peer blocks wait in: arrival wakes a waiter, cancellation
// fails it at once, a missing block times out as UNAVAILABLE, and blocks for
// an ended request are dropped rather than kept.
#include "transport/mailbox.h"

#include <thread>

#include "gtest/gtest.h"

namespace tessera {
namespace {

using std::chrono::milliseconds;

TEST(MailboxTest, DeliversToTheMatchingWaiter) {
  Mailbox mailbox;
  std::thread sender([&] {
    std::this_thread::sleep_for(milliseconds(20));
    mailbox.Put("r", 7, 1, "ab");
  });
  absl::StatusOr<std::string> got = mailbox.Take("r", 7, 1, milliseconds(2000));
  sender.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "ab");
  EXPECT_EQ(mailbox.PendingBlocks(), 0);
}

TEST(MailboxTest, MissingBlockTimesOutAsUnavailable) {
  Mailbox mailbox;
  mailbox.Put("r", 7, 2, "x");  // another sender: not the one awaited
  absl::StatusOr<std::string> got = mailbox.Take("r", 7, 1, milliseconds(50));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
}

TEST(MailboxTest, CancelWakesWaitersAndDropsLateBlocks) {
  Mailbox mailbox;
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(20));
    mailbox.Cancel("r");
  });
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> got = mailbox.Take("r", 1, 0, milliseconds(5000));
  canceller.join();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  mailbox.Put("r", 2, 0, "late");  // arrives after the request ended
  EXPECT_EQ(mailbox.PendingBlocks(), 0);
  mailbox.Put("other", 2, 0, "other");
  EXPECT_EQ(mailbox.PendingBlocks(), 1);
}

}  // namespace
}  // namespace tessera
