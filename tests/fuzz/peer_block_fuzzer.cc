// libFuzzer target: PeerBlocks as a worker's Deliver files them, mixed with
// what its shards do to the mailbox. The input is records, each a length
// byte pair, an operation byte and a serialized PeerBlock:
//   0 Deliver (Put)  1 Open (a shard claims the request)  2 Close (it ended)
//   3 Take (no wait)  4 read the pending bytes (which expires old blocks)
// against a mailbox with bamba-tiny's limits for a short served context
// (the first input byte picks an unclaimed expiry of 0 or 10 s).
// Invariants: Put answers OK, INVALID_ARGUMENT (exactly when the block is
// larger than the largest exchange) or RESOURCE_EXHAUSTED; the pending bytes
// never pass the total bound; a closed request's Take is CANCELLED; once
// every request seen is closed nothing is pending. Violations trap.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <utility>

#include "model/model_config.h"
#include "google/protobuf/stubs/logging.h"
#include "tessera/v1/worker.pb.h"
#include "transport/mailbox.h"
#include "worker/network_limits.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

int64_t MaxBlockBytes() {
  static const int64_t bytes = [] {
    absl::StatusOr<tessera::ModelConfig> config =
        tessera::LoadModelConfig(TESSERA_TEST_DATA_DIR "/hf-tiny/bamba-tiny");
    Check(config.ok());
    return tessera::MaxPeerBlockBytes(*config, /*shard_tokens=*/16);  // a short context keeps inputs small
  }();
  return bytes;
}

}  // namespace

// Parse failures are expected by the thousand: protobuf's log of each is noise.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  tessera::MailboxLimits limits = tessera::PeerMailboxLimits(MaxBlockBytes());
  limits.max_request_bytes = 4 * (MaxBlockBytes() + tessera::kMailboxBlockOverheadBytes);
  limits.max_unclaimed_bytes = 6 * (MaxBlockBytes() + tessera::kMailboxBlockOverheadBytes);
  limits.max_total_bytes = 10 * (MaxBlockBytes() + tessera::kMailboxBlockOverheadBytes);
  limits.unclaimed_ttl = std::chrono::milliseconds(data[0] % 2 == 0 ? 0 : 10000);
  tessera::Mailbox mailbox(limits);
  std::set<std::pair<std::string, std::string>> seen, closed;
  size_t at = 1;
  while (at + 3 <= size) {
    const size_t length = static_cast<size_t>(data[at]) | (static_cast<size_t>(data[at + 1]) << 8);
    const uint8_t op = data[at + 2] % 5;
    at += 3;
    const size_t take = length < size - at ? length : size - at;
    tessera::v1::PeerBlock block;
    const bool parsed = block.ParseFromArray(data + at, static_cast<int>(take));
    at += take;
    if (!parsed) continue;
    const std::pair<std::string, std::string> key(block.request_id(), block.request_secret());
    seen.insert(key);
    switch (op) {
      case 0: {
        const int64_t bytes = static_cast<int64_t>(block.data().size());
        const absl::Status status =
            mailbox.Put(block.request_id(), block.request_secret(), block.tag(), block.from_rank(), block.data());
        Check(status.ok() || status.code() == absl::StatusCode::kInvalidArgument ||
              status.code() == absl::StatusCode::kResourceExhausted);
        Check((status.code() == absl::StatusCode::kInvalidArgument) == (bytes > limits.max_block_bytes));
        break;
      }
      case 1:
        mailbox.Open(block.request_id(), block.request_secret());
        break;
      case 2:
        mailbox.Close(block.request_id(), block.request_secret());
        closed.insert(key);
        break;
      case 3: {
        absl::StatusOr<std::string> got = mailbox.Take(block.request_id(), block.request_secret(), block.tag(),
                                                       block.from_rank(), std::chrono::milliseconds(0));
        if (closed.count(key) > 0) Check(got.status().code() == absl::StatusCode::kCancelled);
        if (got.ok()) Check(static_cast<int64_t>(got->size()) <= limits.max_block_bytes);
        break;
      }
      case 4:
        break;
    }
    const int64_t pending = mailbox.PendingBytes();
    Check(pending >= 0 && pending <= limits.max_total_bytes);
    Check(mailbox.PendingBlocks() >= 0);
  }
  for (const auto& [id, secret] : seen) mailbox.Close(id, secret);
  Check(mailbox.PendingBytes() == 0 && mailbox.PendingBlocks() == 0);
  return 0;
}
