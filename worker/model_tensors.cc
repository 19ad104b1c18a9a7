// One walk over the weight layout for every backend: which tensors are
// matrices (placed in the compute type), which are vectors (fp32), and which
// projections stack when the backend stacks.
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

// Projections and their optional biases, placed one by one or stacked.
struct Projections {
  std::vector<const HostTensor*> weights;  // (rows_i, hidden) each
  std::vector<const HostTensor*> biases;   // (rows_i) each, absent where the checkpoint has none
};

// Stacking needs every weight present with one width, and biases for all
// parts or for none.
bool CanStack(const TensorStacker& stack, const Projections& p) {
  if (!stack) return false;
  int64_t width = -1;
  for (const HostTensor* w : p.weights) {
    if (Absent(*w) || w->shape.size() < 2) return false;
    const int64_t cols = ShapeOf(*w, ElementType::kF32).cols;
    if (width >= 0 && cols != width) return false;
    width = cols;
  }
  size_t biases = 0;
  for (const HostTensor* b : p.biases) biases += Absent(*b) ? 0 : 1;
  return biases == 0 || biases == p.biases.size();
}

// `parts` stacked into `whole`, each of `views` pointed at its share: rows of
// a matrix, columns of a vector.
absl::Status StackInto(const TensorStacker& stack, const std::vector<const HostTensor*>& parts, bool matrix,
                       Tensor& whole, const std::vector<Tensor*>& views) {
  ASSIGN_OR_RETURN(whole, stack(parts, matrix));
  int64_t offset = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const int64_t n = matrix ? ShapeOf(*parts[i], whole.type).rows : parts[i]->numel();
    *views[i] = matrix ? whole.Rows(offset, n) : whole.Cols(offset, n);
    offset += n;
  }
  return absl::OkStatus();
}

// The projections of `p` into `weights` and `biases` (one view each), stacked
// into `stacked` and `stacked_bias` where the backend stacks them.
absl::Status PlaceProjections(const TensorPlacer& place, const TensorStacker& stack, const Projections& p,
                              const std::vector<Tensor*>& weights, const std::vector<Tensor*>& biases,
                              Tensor& stacked, Tensor& stacked_bias) {
  if (!CanStack(stack, p)) {
    for (size_t i = 0; i < p.weights.size(); ++i) {
      ASSIGN_OR_RETURN(*weights[i], Matrix(place, *p.weights[i]));
      ASSIGN_OR_RETURN(*biases[i], Vector(place, *p.biases[i]));
    }
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(StackInto(stack, p.weights, /*matrix=*/true, stacked, weights));
  if (Absent(*p.biases[0])) return absl::OkStatus();
  return StackInto(stack, p.biases, /*matrix=*/false, stacked_bias, biases);
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

absl::StatusOr<AttentionTensors> PlaceAttention(const TensorPlacer& place, const TensorStacker& stack,
                                                const AttentionWeights& w) {
  AttentionTensors t;
  RETURN_IF_ERROR(PlaceProjections(place, stack, {{&w.q_proj, &w.k_proj, &w.v_proj}, {&w.q_bias, &w.k_bias, &w.v_bias}},
                                   {&t.q_proj, &t.k_proj, &t.v_proj}, {&t.q_bias, &t.k_bias, &t.v_bias}, t.qkv_proj,
                                   t.qkv_bias));
  ASSIGN_OR_RETURN(t.o_proj, Matrix(place, w.o_proj));
  ASSIGN_OR_RETURN(t.o_bias, Vector(place, w.o_bias));
  return t;
}

absl::StatusOr<MlpTensors> PlaceMlp(const TensorPlacer& place, const TensorStacker& stack, const MlpWeights& w) {
  MlpTensors t;
  if (Absent(w.gate_proj)) {  // relu²: up alone
    ASSIGN_OR_RETURN(t.up_proj, Matrix(place, w.up_proj));
    ASSIGN_OR_RETURN(t.up_bias, Vector(place, w.up_bias));
  } else {
    RETURN_IF_ERROR(PlaceProjections(place, stack, {{&w.gate_proj, &w.up_proj}, {&w.gate_bias, &w.up_bias}},
                                     {&t.gate_proj, &t.up_proj}, {&t.gate_bias, &t.up_bias}, t.gate_up_proj,
                                     t.gate_up_bias));
  }
  ASSIGN_OR_RETURN(t.down_proj, Matrix(place, w.down_proj));
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

Tensor StackedShape(const std::vector<const HostTensor*>& parts, bool matrix, ElementType type) {
  Tensor t = ShapeOf(*parts.front(), type);  // (rows of part 0, width)
  int64_t total = 0;
  for (const HostTensor* part : parts) total += part->numel();
  t.rows = matrix ? total / t.cols : 1;  // (Σ rows, width) or (1, Σ n)
  t.cols = matrix ? t.cols : total;
  t.stride = t.cols;
  return t;
}

absl::StatusOr<ModelTensors> PlaceModelTensors(const ModelWeights& weights, const TensorPlacer& place,
                                               const TensorStacker& stack) {
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
        ASSIGN_OR_RETURN(block.op, PlaceAttention(place, stack, std::get<AttentionWeights>(b.op)));
        break;
      }
      case BlockKind::kMlp: {
        ASSIGN_OR_RETURN(block.op, PlaceMlp(place, stack, std::get<MlpWeights>(b.op)));
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
