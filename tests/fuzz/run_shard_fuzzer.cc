// libFuzzer target: a RunShardRequest as a worker receives it. The bytes are
// parsed as the message (gRPC does the same), converted (FromProto, the
// worker service's) and validated against bamba-tiny and a worker's limits
// (ValidateShardRequest, the shard runner's). Whatever the input: a status,
// never a crash or undefined behaviour; a refusal is INVALID_ARGUMENT. A
// request it accepts must keep every invariant admission and decoding rely
// on: the plan's pieces and positions inside the served context, the shard's token count, the
// memory it reserves computed without overflow, and a sampler that returns
// an id inside the vocabulary for any logits. Invariant violations trap.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "model/model_config.h"
#include "services/worker_proto.h"
#include "google/protobuf/stubs/logging.h"
#include "tessera/v1/worker.pb.h"
#include "worker/network_limits.h"
#include "worker/sampler.h"
#include "worker/shard_validation.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

const tessera::ModelConfig& Config() {
  static const tessera::ModelConfig config = [] {
    absl::StatusOr<tessera::ModelConfig> c = tessera::LoadModelConfig(TESSERA_TEST_DATA_DIR "/hf-tiny/bamba-tiny");
    Check(c.ok());
    return *c;
  }();
  return config;
}

}  // namespace

// Parse failures are expected by the thousand: protobuf's log of each is noise.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tessera::v1::RunShardRequest message;
  if (!message.ParseFromArray(data, static_cast<int>(size))) return 0;
  const tessera::ShardRequest r = tessera::FromProto(message);
  tessera::ShardLimits limits;
  limits.memory_budget_bytes = int64_t{64} << 20;
  limits.max_context_tokens = Config().max_position_embeddings;
  limits.max_new_tokens_limit = 4096;
  const absl::Status status = tessera::ValidateShardRequest(r, Config(), limits);
  if (!status.ok()) {
    Check(status.code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  const int shards = static_cast<int>(r.shards.size());
  Check(shards >= 1 && shards <= tessera::kMaxShardsPerRequest && r.rank >= 0 && r.rank < shards);
  Check(r.shards.front().begin == 0);
  // The pieces the prefill runs (contiguous, zigzag or in rounds): non-empty,
  // contiguous from 0 to the prompt's end inside the context, each in a round
  // of the plan, this shard's as many tokens as it was sent.
  int64_t prompt_end = 0;
  int64_t held = 0;
  for (const tessera::ShardPiece& p : tessera::PlanPieces(r)) {
    Check(p.begin == prompt_end && p.end > p.begin && p.rank >= 0 && p.rank < shards && p.round >= 0 &&
          p.round < r.prefill_rounds);
    prompt_end = p.end;
    if (p.rank == r.rank) held += p.len();
  }
  Check(prompt_end + r.max_new_tokens <= limits.max_context_tokens);
  Check(static_cast<int64_t>(r.token_ids.size()) == held);
  for (int32_t id : r.token_ids) Check(id >= 0 && id < Config().vocab_size);
  Check(r.reserved_bytes >= 0 && r.reserved_bytes <= limits.memory_budget_bytes);
  Check(r.max_new_tokens >= 0 && r.max_new_tokens <= limits.max_new_tokens_limit);
  Check(r.peer_timeout.count() >= 0);
  Check(r.secret.size() >= tessera::kMinRequestSecretBytes && r.secret.size() <= tessera::kMaxRequestSecretBytes);
  const int64_t tokens = tessera::ShardTokens(r);
  Check(tokens >= 1 && tokens <= limits.max_context_tokens);
  // The memory a shard reserves, for any K/V and state size a model may have.
  for (int64_t kv : {int64_t{0}, int64_t{256}, int64_t{1} << 40, INT64_MAX}) {
    const int64_t needed = tessera::ShardMemoryBytes(r, kv, int64_t{1} << 20);
    Check(needed >= r.reserved_bytes && needed >= 0);
  }
  // The decoding shard samples with these parameters: an id in the vocabulary.
  if (r.rank == shards - 1) {
    std::vector<float> logits(static_cast<size_t>(Config().vocab_size), 0.0f);
    for (size_t i = 0; i < logits.size() && i < size; ++i) {
      logits[i] = static_cast<float>(static_cast<int8_t>(data[i])) * 0.25f;
    }
    if (size > 4) {
      float special = 0;
      std::memcpy(&special, data, sizeof(special));  // NaN, inf, huge: the sampler must cope
      logits[data[4] % logits.size()] = special;
    }
    tessera::Sampler sampler(r.sampling);
    for (int step = 0; step < 2; ++step) {
      const int32_t token = sampler.Sample(logits);
      Check(token >= 0 && token < Config().vocab_size);
    }
  }
  return 0;
}
