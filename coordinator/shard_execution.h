// Runs an admitted request on its workers and relays what they send (the
// workers speak tessera/v1/worker.proto; the caller gets generate_types.h). The
// coordinator is not in the data path: it starts one RunShard call per shard
// and reads them all at once (see shard_streams.h), then
//  - relays prefill progress as one aggregate: the fewest layers any shard
//    has done, sent whenever that number changes, complete before the first
//    token;
//  - keeps each shard's prompt logits and joins them in shard order;
//  - relays the last shard's tokens as they come;
//  - when the last shard's stream ends OK after `finished` and every other
//    shard has sent `prefilled` (their messages may trail the last shard's),
//    cancels the other shards' calls (which tells their workers to free the
//    request) and waits for every stream to end;
//  - when any stream fails, cancels the others and fails with that error
//    (UNAVAILABLE when the worker is gone, which `on_worker_unreachable`
//    hears about: the worker the failed stream named as the lost peer when
//    it is one of the request's, else the failed stream's own worker);
//    `tokens_relayed` says whether any token reached the client by then
//    (the coordinator retries only a request that sent none); when `interruption` reports a
//    status (client cancelled, server shutting down), cancels all and ends
//    with it;
//  - ends the request OK early when `early_finish` names a reason (a stop
//    string matched, an abort): polled with `interruption` and after every
//    token relayed (deltas of several tokens are relayed a token at a time
//    when the request has stop strings), it cancels every call and keeps
//    the tokens relayed so far;
//  - carries the request's log-probabilities: the last shard's per token,
//    and prompt_logprobs computed here from the prompt's logits (which the
//    workers then send, whether or not the client asked for logits);
//  - refuses what no honest worker sends (INTERNAL naming the worker): a
//    token id outside the vocabulary, logits whose size is not rows x
//    vocab_size, logprobs that do not match the tokens (or none when asked
//    for); ignores progress with impossible layer counts;
//  - says once how the prefill phase ended (`on_prefill_end`): OK as soon
//    as every shard sent `prefilled`, else, after every stream ended, why the
//    request ended before that (NCCL groups need both: nccl_groups.h).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/generate_events.h"
#include "coordinator/generate_types.h"
#include "coordinator/worker_registry.h"
#include "tessera/v1/worker.pb.h"

namespace tessera {

struct ShardExecution {
  std::string worker_request_id;  // unique per request (random), sent to the workers
  std::string request_secret;     // random per request, sent to the workers (RunShardRequest.request_secret)
  std::string client_request_id;  // echoed in the response
  int64_t eos_token_id = -1;      // -1: none (or ignore_eos)
  int64_t vocab_size = 0;         // > 0: a worker's token ids and logits rows are checked against it
  int32_t peer_timeout_ms = 10000;
  std::chrono::system_clock::time_point deadline = std::chrono::system_clock::time_point::max();
  // Polled every `poll_interval`: a non-OK status ends the request with it.
  std::function<absl::Status()> interruption = [] { return absl::OkStatus(); };
  absl::Duration poll_interval = absl::Milliseconds(50);
  // Polled as `interruption` is, and after every relayed token: a reason
  // ends the request OK with it.
  std::function<std::optional<FinishReason>()> early_finish = [] { return std::optional<FinishReason>(); };
  // Told about a worker whose call failed as if it were gone.
  std::function<void(const std::string& address)> on_worker_unreachable = [](const std::string&) {};
  // Present: the shards exchange over NCCL in this group (every shard's
  // RunShardRequest carries it); absent: over gRPC.
  std::optional<v1::NcclGroup> nccl;
  std::function<void(const absl::Status& prefill)> on_prefill_end = [](const absl::Status&) {};
  // Prefix reuse across shards: send each shard the prompt before it (so
  // that its worker can keep its span), and > 0: a resumed plan
  // (Admission::resume_from).
  bool send_prefix_tokens = false;
  int64_t resume_from = 0;
};

// `request` has its prompt as token ids (text is tokenized before).
absl::StatusOr<GenerateResult> ExecuteShards(const std::vector<ShardLease>& shards, const GenerateRequest& request,
                                             const ShardExecution& execution, GenerateEvents& events,
                                             bool* tokens_relayed = nullptr);

}  // namespace tessera
