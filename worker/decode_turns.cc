// DecodeTurns (decode_turns.h): a count of running steps and the time the
// last one ended, under one mutex; prefill pieces wait on a condition.
#include "worker/decode_turns.h"

namespace tessera {

void DecodeTurns::Begin() {
  std::lock_guard<std::mutex> lock(mu_);
  ++running_;
  ++started_;
}

void DecodeTurns::End() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
    ++finished_;
    last_end_ = Clock::now();
  }
  ended_.notify_all();
}

bool DecodeTurns::DecodeActive() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_ > 0 || (finished_ > 0 && Clock::now() - last_end_ < kActiveWindow);
}

// Steps end in any order, so "every step running at the call" is: as many
// steps have finished as had started then.
void DecodeTurns::WaitForRunningSteps() {
  std::unique_lock<std::mutex> lock(mu_);
  const int64_t begun = started_;
  ended_.wait_for(lock, kMaxWait, [&] { return finished_ >= begun; });
}

}  // namespace tessera
