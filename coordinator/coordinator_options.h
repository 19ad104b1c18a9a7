// The coordinator's knobs, one place, with their defaults: the command-line
// flags map onto these fields and tests shorten the timings.
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace tessera {

struct CoordinatorMetrics;

struct CoordinatorOptions {
  int64_t min_shard_tokens = 1024;                           // prompts shorter than this use one shard
  int32_t max_new_tokens_limit = 4096;                       // the largest max_new_tokens a request may ask for
  int32_t peer_timeout_ms = 10000;                           // passed to workers in RunShardRequest
  absl::Duration health_interval = absl::Milliseconds(500);  // GetStatus on every worker this often
  absl::Duration status_deadline = absl::Seconds(1);         // one GetStatus may take this long
  int failures_before_unready = 2;                  // consecutive failed checks that drop a worker from planning
  absl::Duration forget_after = absl::Seconds(30);  // a worker silent this long is forgotten
  absl::Duration cancel_poll_interval = absl::Milliseconds(50);  // how often a request checks its client
  CoordinatorMetrics* metrics = nullptr;  // optional; must outlive the coordinator
  std::string metrics_address;            // reported in GetServerInfo, empty when none
};

}  // namespace tessera
