// One walk over the weight layout for every backend: which tensors are
// matrices (placed in the compute type) and which are vectors (fp32).
#include "worker/model_tensors.h"

#include "common/status_macros.h"

namespace tessera {
namespace {

// An optional tensor the checkpoint does not have (a bias, SwiGLU's gate).
bool Absent(const HostTensor& t) { return t.data == nullptr && t.stored == nullptr; }

// A vector's place, or an empty Tensor for an absent optional one.
absl::StatusOr<Tensor> Vector(const TensorPlacer& place, const HostTensor& t) {
  if (Absent(t)) return Tensor{};
  return place(t, /*matrix=*/false);
}

absl::StatusOr<Tensor> Matrix(const TensorPlacer& place, const HostTensor& t) {
  if (Absent(t)) return Tensor{};
  return place(t, /*matrix=*/true);
}

absl::StatusOr<MambaTensors> PlaceMamba(const TensorPlacer& place, const MambaWeights& w) {
  HostTensor a;  // (H): a view of the computed -exp(A_log)
  a.shape = {static_cast<int64_t>(w.A.size())};
  a.data = w.A.data();
  MambaTensors t;
  ASSIGN_OR_RETURN(t.in_proj, Matrix(place, w.in_proj));
  ASSIGN_OR_RETURN(t.in_proj_bias, Vector(place, w.in_proj_bias));
  ASSIGN_OR_RETURN(t.conv_weight, Vector(place, w.conv_weight));
  ASSIGN_OR_RETURN(t.conv_bias, Vector(place, w.conv_bias));
  ASSIGN_OR_RETURN(t.dt_bias, Vector(place, w.dt_bias));
  ASSIGN_OR_RETURN(t.A, Vector(place, a));
  ASSIGN_OR_RETURN(t.D, Vector(place, w.D));
  ASSIGN_OR_RETURN(t.norm, Vector(place, w.norm));
  ASSIGN_OR_RETURN(t.out_proj, Matrix(place, w.out_proj));
  ASSIGN_OR_RETURN(t.out_proj_bias, Vector(place, w.out_proj_bias));
  return t;
}

absl::StatusOr<AttentionTensors> PlaceAttention(const TensorPlacer& place, const AttentionWeights& w) {
  AttentionTensors t;
  ASSIGN_OR_RETURN(t.q_proj, Matrix(place, w.q_proj));
  ASSIGN_OR_RETURN(t.k_proj, Matrix(place, w.k_proj));
  ASSIGN_OR_RETURN(t.v_proj, Matrix(place, w.v_proj));
  ASSIGN_OR_RETURN(t.o_proj, Matrix(place, w.o_proj));
  ASSIGN_OR_RETURN(t.q_bias, Vector(place, w.q_bias));
  ASSIGN_OR_RETURN(t.k_bias, Vector(place, w.k_bias));
  ASSIGN_OR_RETURN(t.v_bias, Vector(place, w.v_bias));
  ASSIGN_OR_RETURN(t.o_bias, Vector(place, w.o_bias));
  return t;
}

absl::StatusOr<MlpTensors> PlaceMlp(const TensorPlacer& place, const MlpWeights& w) {
  MlpTensors t;
  ASSIGN_OR_RETURN(t.gate_proj, Matrix(place, w.gate_proj));
  ASSIGN_OR_RETURN(t.up_proj, Matrix(place, w.up_proj));
  ASSIGN_OR_RETURN(t.down_proj, Matrix(place, w.down_proj));
  ASSIGN_OR_RETURN(t.gate_bias, Vector(place, w.gate_bias));
  ASSIGN_OR_RETURN(t.up_bias, Vector(place, w.up_bias));
  ASSIGN_OR_RETURN(t.down_bias, Vector(place, w.down_bias));
  return t;
}

absl::StatusOr<MoeTensors> PlaceMoe(const TensorPlacer& place, const MoeWeights& w) {
  MoeTensors t;
  ASSIGN_OR_RETURN(t.router, Vector(place, w.router));
  ASSIGN_OR_RETURN(t.correction_bias, Vector(place, w.correction_bias));
  ASSIGN_OR_RETURN(t.experts_up, Matrix(place, w.experts_up));
  ASSIGN_OR_RETURN(t.experts_down, Matrix(place, w.experts_down));
  ASSIGN_OR_RETURN(t.shared_up, Matrix(place, w.shared_up));
  ASSIGN_OR_RETURN(t.shared_down, Matrix(place, w.shared_down));
  return t;
}

}  // namespace

Tensor ShapeOf(const HostTensor& host, ElementType type) {
  Tensor t;
  t.type = type;
  const int64_t n = host.numel();
  t.rows = host.shape.size() >= 2 ? host.shape[0] : 1;
  t.cols = t.rows > 0 ? n / t.rows : 0;
  t.stride = t.cols;
  return t;
}

absl::StatusOr<ModelTensors> PlaceModelTensors(const ModelWeights& weights, const TensorPlacer& place) {
  ModelTensors t;
  ASSIGN_OR_RETURN(t.embedding, Matrix(place, weights.embedding));
  ASSIGN_OR_RETURN(t.final_norm, Vector(place, weights.final_norm));
  ASSIGN_OR_RETURN(t.lm_head, Matrix(place, weights.lm_head));
  for (const BlockWeights& b : weights.blocks) {
    BlockTensors block;
    block.spec = b.spec;
    block.state_slot = b.state_slot;
    ASSIGN_OR_RETURN(block.norm, Vector(place, b.norm));
    switch (b.spec.kind) {
      case BlockKind::kMamba: {
        ASSIGN_OR_RETURN(block.op, PlaceMamba(place, std::get<MambaWeights>(b.op)));
        break;
      }
      case BlockKind::kAttention: {
        ASSIGN_OR_RETURN(block.op, PlaceAttention(place, std::get<AttentionWeights>(b.op)));
        break;
      }
      case BlockKind::kMlp: {
        ASSIGN_OR_RETURN(block.op, PlaceMlp(place, std::get<MlpWeights>(b.op)));
        break;
      }
      case BlockKind::kMoe: {
        ASSIGN_OR_RETURN(block.op, PlaceMoe(place, std::get<MoeWeights>(b.op)));
        break;
      }
    }
    t.blocks.push_back(std::move(block));
  }
  return t;
}

}  // namespace tessera
