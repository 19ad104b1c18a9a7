// PeerTransport between workers over gRPC: a Post is a unary Worker.Deliver
// to the receiving worker, which files the block in its Mailbox; a Take waits
// on this worker's own mailbox; a split-KV query is one Worker.AttendKv per
// other rank, in parallel. Both carry the request's secret. A call that fails
// UNAVAILABLE is tried once more, waiting up to kPeerReconnectGrace for the
// channel (a peer restarted at the same address leaves it in reconnect
// backoff); a dead peer then fails a Post or a query within that grace, and a
// Take at the peer timeout or when the request is cancelled (UNAVAILABLE).
// Every UNAVAILABLE names the peer at fault in the status payload
// kLostPeerPayload (its address), which the worker's service passes on.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "transport/mailbox.h"
#include "transport/mailbox_transport.h"
#include "transport/peer_metrics.h"
#include "transport/peer_stubs.h"

namespace tessera {

// Status payload of a peer exchange that failed because of a peer: its address.
inline constexpr char kLostPeerPayload[] = "type.tessera.dev/lost-peer";
inline constexpr std::chrono::milliseconds kPeerReconnectGrace{1500};

class GrpcTransport final : public MailboxTransport {
 public:
  // `peer_addresses` (size): the worker of each rank; `metrics` may be null.
  GrpcTransport(PeerStubs& stubs, Mailbox& mailbox, std::string request_id, std::string secret, int rank,
                std::vector<std::string> peer_addresses, std::chrono::milliseconds timeout,
                PeerMetrics* metrics = nullptr)
      : stubs_(stubs), mailbox_(mailbox), request_id_(std::move(request_id)), secret_(std::move(secret)),
        rank_(rank), addresses_(std::move(peer_addresses)), timeout_(timeout), metrics_(metrics) {}

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(addresses_.size()); }
  absl::StatusOr<std::vector<AttentionPartial>> QueryKv(int64_t attention_slot, absl::Span<const float> q,
                                                        int64_t q_len, int64_t q_position0) override;

 protected:
  absl::Status Post(int to, uint64_t tag, std::string block) override;
  absl::StatusOr<std::string> Take(int from, uint64_t tag) override;

 private:
  // UNAVAILABLE about shard `rank`: `what` failed because `why`; its address in kLostPeerPayload.
  absl::Status PeerLost(int rank, absl::string_view what, absl::string_view why) const;

  PeerStubs& stubs_;
  Mailbox& mailbox_;
  std::string request_id_;
  std::string secret_;
  int rank_;
  std::vector<std::string> addresses_;
  std::chrono::milliseconds timeout_;
  PeerMetrics* metrics_;
};

}  // namespace tessera
