// Engine on the CPU: SequenceState as the shard state, ForwardCpu as the pass.
#include "worker/cpu_engine.h"

#include "absl/strings/str_cat.h"
#include "worker/cpu_forward.h"
#include "worker/sequence_state.h"

namespace tessera {
namespace {

class CpuShardState final : public ShardState {
 public:
  explicit CpuShardState(SequenceState state) : state(std::move(state)) {}
  int64_t num_tokens() const override { return state.num_tokens; }
  int64_t MemoryBytes() const override { return state.MemoryBytes(); }
  void DropMambaStates() override {
    for (MambaLayerState& m : state.mamba) m = MambaLayerState{};
  }
  SequenceState state;
};

class CpuEngine final : public Engine {
 public:
  CpuEngine(std::unique_ptr<ModelWeights> owned, const ModelWeights& weights)
      : owned_(std::move(owned)), weights_(weights) {}

  const ModelConfig& config() const override { return weights_.config; }
  std::string backend() const override { return "cpu"; }
  std::string Describe() const override { return "cpu backend, fp32"; }
  int64_t KvBytesPerToken() const override { return tessera::KvBytesPerToken(config(), sizeof(float)); }
  int64_t StateBytesPerRequest() const override { return tessera::StateBytesPerRequest(config()); }
  int64_t DefaultMemoryBudgetBytes() const override { return int64_t{1} << 30; }
  int64_t PrefillTokenLimit(int64_t) const override { return 0; }

  absl::StatusOr<std::unique_ptr<ShardState>> NewState(int64_t begin, int64_t) override {
    return std::make_unique<CpuShardState>(SequenceState::ForShard(config(), begin));
  }

  absl::StatusOr<std::vector<float>> Forward(ShardState& state, absl::Span<const int32_t> ids, LogitsRows rows,
                                             const ShardContext& shard) override {
    return ForwardCpu(weights_, Own(state), ids, rows, shard);
  }

  absl::StatusOr<AttentionPartial> AttendStoredKv(const ShardState& state, int64_t attention_slot,
                                                  absl::Span<const float> q, int64_t q_len,
                                                  int64_t q_position0) override {
    return tessera::AttendStoredKv(config(), Own(state), attention_slot, q, q_len, q_position0);
  }

 private:
  static SequenceState& Own(ShardState& state) { return static_cast<CpuShardState&>(state).state; }
  static const SequenceState& Own(const ShardState& state) {
    return static_cast<const CpuShardState&>(state).state;
  }

  std::unique_ptr<ModelWeights> owned_;  // null for a view
  const ModelWeights& weights_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> MakeCpuEngine(std::unique_ptr<ModelWeights> weights) {
  if (weights == nullptr) return absl::InvalidArgumentError("MakeCpuEngine: no weights");
  if (weights->storage != WeightStorage::kFloat32) {
    return absl::InvalidArgumentError("the CPU engine needs weights loaded as fp32");
  }
  const ModelWeights& view = *weights;
  return std::make_unique<CpuEngine>(std::move(weights), view);
}

std::unique_ptr<Engine> MakeCpuEngineView(const ModelWeights& weights) {
  return std::make_unique<CpuEngine>(nullptr, weights);
}

}  // namespace tessera
