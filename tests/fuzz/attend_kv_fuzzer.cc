// libFuzzer target: an AttendKvRequest as a worker receives it, after the
// lookup of its request and secret: the query's numbers are checked
// (ValidateAttendKv, the shard runner's) and the CPU engine attends the
// query over a bamba-tiny shard's stored K/V (Engine::AttendStoredKv, as
// the runner calls it). Whatever the slot, row count, positions and floats
// (NaN and inf included): a status, never a crash, an out-of-bounds read or
// undefined behaviour; an accepted query gives (q_len, Hq, D) outputs and
// (q_len, Hq) log-sum-exps. Violations trap.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/linear.h"
#include "model/model_weights.h"
#include "google/protobuf/stubs/logging.h"
#include "tessera/v1/worker.pb.h"
#include "worker/cpu/cpu_backend.h"
#include "worker/engine.h"
#include "worker/shard_validation.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

struct Held {
  std::unique_ptr<tessera::ModelWeights> weights;
  std::unique_ptr<tessera::Engine> engine;
  std::unique_ptr<tessera::ShardState> state;  // 24 prompt tokens prefilled, as a shard holding K/V
};

Held& Shard() {
  static Held held = [] {
    tessera::cpu::SetBlasThreads(1);
    Held h;
    absl::StatusOr<std::unique_ptr<tessera::ModelWeights>> weights =
        tessera::LoadModelWeights(TESSERA_TEST_DATA_DIR "/hf-tiny/bamba-tiny");
    Check(weights.ok());
    h.weights = *std::move(weights);
    absl::StatusOr<std::unique_ptr<tessera::Engine>> engine = tessera::MakeCpuEngineView(*h.weights);
    Check(engine.ok());
    h.engine = *std::move(engine);
    absl::StatusOr<std::unique_ptr<tessera::ShardState>> state = h.engine->NewState(0, 32);
    Check(state.ok());
    h.state = *std::move(state);
    std::vector<int32_t> prompt;
    for (int i = 0; i < 24; ++i) prompt.push_back(3 + 11 * i % 500);
    Check(h.engine->Forward(*h.state, prompt, tessera::LogitsRows::kNone).ok());
    return h;
  }();
  return held;
}

}  // namespace

// Parse failures are expected by the thousand: protobuf's log of each is noise.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Held& shard = Shard();
  tessera::v1::AttendKvRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  tessera::ShardLimits limits;
  limits.max_context_tokens = shard.weights->config.max_position_embeddings;
  if (!tessera::ValidateAttendKv(request.q_len(), request.q_position0(), limits).ok()) return 0;
  const std::vector<float> q(request.q().begin(), request.q().end());
  absl::StatusOr<tessera::AttentionPartial> part = shard.engine->AttendStoredKv(
      *shard.state, request.attention_slot(), q, request.q_len(), request.q_position0());
  if (!part.ok()) {
    Check(part.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  const tessera::AttentionConfig& a = shard.weights->config.attention;
  Check(part->out.size() == q.size());
  Check(static_cast<int64_t>(part->lse.size()) == request.q_len() * a.num_heads);
  return 0;
}
