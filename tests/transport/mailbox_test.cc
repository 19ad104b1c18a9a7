// The mailbox that peer blocks wait in: arrival wakes a waiter, closing fails
// it at once, a missing block times out as UNAVAILABLE, blocks for an ended
// request are dropped rather than kept; and whatever peers send is bounded:
// a block's size, undelivered bytes per request, for requests nobody here
// runs, and in all, and unclaimed blocks expire. A block is filed under its
// request's secret too: a forged one is never taken, and closing one
// request never touches another that reuses its id.
#include "transport/mailbox.h"

#include <thread>

#include "gtest/gtest.h"

namespace tessera {
namespace {

using std::chrono::milliseconds;

constexpr char kSecret[] = "0123456789abcdef";

TEST(MailboxTest, DeliversToTheMatchingWaiter) {
  Mailbox mailbox;
  std::thread sender([&] {
    std::this_thread::sleep_for(milliseconds(20));
    ASSERT_TRUE(mailbox.Put("r", kSecret, 7, 1, "ab").ok());
  });
  absl::StatusOr<std::string> got = mailbox.Take("r", kSecret, 7, 1, milliseconds(2000));
  sender.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "ab");
  EXPECT_EQ(mailbox.PendingBlocks(), 0);
  EXPECT_EQ(mailbox.PendingBytes(), 0);
}

TEST(MailboxTest, MissingBlockTimesOutAsUnavailable) {
  Mailbox mailbox;
  ASSERT_TRUE(mailbox.Put("r", kSecret, 7, 2, "x").ok());  // another sender: not the one awaited
  absl::StatusOr<std::string> got = mailbox.Take("r", kSecret, 7, 1, milliseconds(50));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
}

TEST(MailboxTest, CloseWakesWaitersAndDropsLateBlocks) {
  Mailbox mailbox;
  std::thread closer([&] {
    std::this_thread::sleep_for(milliseconds(20));
    mailbox.Close("r", kSecret);
  });
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> got = mailbox.Take("r", kSecret, 1, 0, milliseconds(5000));
  closer.join();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  EXPECT_TRUE(mailbox.Put("r", kSecret, 2, 0, "late").ok());  // arrives after the request ended: dropped
  EXPECT_EQ(mailbox.PendingBlocks(), 0);
  ASSERT_TRUE(mailbox.Put("other", kSecret, 2, 0, "other").ok());
  EXPECT_EQ(mailbox.PendingBlocks(), 1);
}

// An attacker who learned a request id but not its secret: its blocks are
// filed apart (never taken by the shard), and a request reusing an id that
// ended (a coordinator restarted, or a forged id) runs as if fresh.
TEST(MailboxTest, ForgedSecretIsNeverTakenAndClosingIsPerSecret) {
  Mailbox mailbox;
  mailbox.Open("r", kSecret);
  ASSERT_TRUE(mailbox.Put("r", "forged-forged-forged", 1, 0, "evil").ok());
  absl::StatusOr<std::string> got = mailbox.Take("r", kSecret, 1, 0, milliseconds(50));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << "the forged block must not be taken";
  ASSERT_TRUE(mailbox.Put("r", kSecret, 1, 0, "good").ok());
  got = mailbox.Take("r", kSecret, 1, 0, milliseconds(50));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "good");

  mailbox.Close("r", "forged-forged-forged");  // a forged close: the real request is untouched
  ASSERT_TRUE(mailbox.Put("r", kSecret, 2, 0, "still").ok());
  got = mailbox.Take("r", kSecret, 2, 0, milliseconds(50));
  ASSERT_TRUE(got.ok()) << got.status();

  mailbox.Close("r", kSecret);
  // The same id again under a fresh secret (a restarted coordinator's req-1).
  const std::string fresh = "fedcba9876543210";
  mailbox.Open("r", fresh);
  ASSERT_TRUE(mailbox.Put("r", fresh, 1, 0, "new").ok());
  got = mailbox.Take("r", fresh, 1, 0, milliseconds(50));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "new");
}

TEST(MailboxTest, OversizedBlockIsInvalidArgument) {
  MailboxLimits limits;
  limits.max_block_bytes = 100;
  Mailbox mailbox(limits);
  EXPECT_TRUE(mailbox.Put("r", kSecret, 1, 0, std::string(100, 'x')).ok());
  const absl::Status status = mailbox.Put("r", kSecret, 2, 0, std::string(101, 'x'));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("<= 100 bytes"), absl::string_view::npos) << status;
}

// A flood of blocks for ids nobody runs here: bounded in all, per request,
// counted in PendingBytes, and dropped once unclaimed_ttl passes.
TEST(MailboxTest, UnclaimedBlocksAreBoundedAndExpire) {
  MailboxLimits limits;
  limits.max_block_bytes = 1000;
  limits.max_request_bytes = 10 * (1000 + kMailboxBlockOverheadBytes);
  limits.max_unclaimed_bytes = 20 * (1000 + kMailboxBlockOverheadBytes);
  limits.max_total_bytes = 40 * (1000 + kMailboxBlockOverheadBytes);
  limits.unclaimed_ttl = milliseconds(200);
  Mailbox mailbox(limits);
  int accepted = 0, refused = 0;
  for (int i = 0; i < 100; ++i) {
    const absl::Status status = mailbox.Put("unknown-" + std::to_string(i % 7), "s", i, 0, std::string(1000, 'x'));
    if (status.ok()) {
      ++accepted;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
      ++refused;
    }
  }
  EXPECT_EQ(accepted, 20);
  EXPECT_EQ(refused, 80);
  EXPECT_EQ(mailbox.PendingBytes(), 20 * (1000 + kMailboxBlockOverheadBytes));
  // One request alone cannot take more than its share.
  Mailbox one(limits);
  for (int i = 0; i < 30; ++i) (void)one.Put("r", "s", i, 0, std::string(1000, 'x'));
  EXPECT_EQ(one.PendingBlocks(), 10);
  // Empty blocks cost their overhead: a flood of them is bounded too.
  Mailbox empty(limits);
  for (int i = 0; i < 1000; ++i) (void)empty.Put("e" + std::to_string(i), "s", 0, 0, "");
  EXPECT_LE(empty.PendingBytes(), limits.max_unclaimed_bytes);

  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(mailbox.PendingBytes(), 0);
  EXPECT_EQ(mailbox.PendingBlocks(), 0);
  // Room again once expired.
  EXPECT_TRUE(mailbox.Put("later", "s", 1, 0, std::string(1000, 'x')).ok());
}

// A claimed request's blocks wait for it however long it computes, and the
// unclaimed bound does not count them.
TEST(MailboxTest, ClaimedBlocksDoNotExpire) {
  MailboxLimits limits;
  limits.max_unclaimed_bytes = 1500;
  limits.unclaimed_ttl = milliseconds(50);
  Mailbox mailbox(limits);
  mailbox.Open("r", kSecret);
  ASSERT_TRUE(mailbox.Put("r", kSecret, 1, 0, std::string(1000, 'x')).ok());
  ASSERT_TRUE(mailbox.Put("r", kSecret, 2, 0, std::string(1000, 'x')).ok());
  EXPECT_TRUE(mailbox.Put("unclaimed", kSecret, 1, 0, std::string(1000, 'x')).ok());
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(mailbox.PendingBlocks(), 2);
  EXPECT_TRUE(mailbox.Take("r", kSecret, 2, 0, milliseconds(10)).ok());
  mailbox.Close("r", kSecret);
  EXPECT_EQ(mailbox.PendingBytes(), 0);
}

}  // namespace
}  // namespace tessera
