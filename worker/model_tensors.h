// The model's weights as a backend computes on them: one Tensor view per
// checkpoint tensor, in the backend's memory, laid out as model/model_weights.h
// binds them to the config. Matrices (projections, embedding, lm_head) are in
// the backend's matrix type; vectors (norms, biases, conv taps, A, D, dt_bias)
// are fp32 rows (1, n). The backend that placed them owns the memory.
//
// Projections that read the same input may be stacked into one matrix, so
// that one GEMM computes them all: attention's q, k, v and SwiGLU's gate, up.
// Where the backend stacks them (the CUDA backend: a wide GEMM runs closer to
// the tensor cores' peak than three narrow ones), the stacked tensor is set
// and the parts view its rows; where it does not (the CPU, whose weights are
// views of the checkpoint), the stacked tensor is empty.
#pragma once

#include <cstdint>
#include <functional>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "worker/tensor.h"

namespace tessera {

struct MambaTensors {
  Tensor in_proj;        // (in_proj_width, hidden)
  Tensor in_proj_bias;   // (1, in_proj_width) or empty
  Tensor conv_weight;    // (C, K)
  Tensor conv_bias;      // (1, C) or empty
  Tensor dt_bias;        // (1, H)
  Tensor A;              // (1, H): -exp(A_log)
  Tensor D;              // (1, H)
  Tensor norm;           // (1, d_inner): gated RMSNorm weight
  Tensor out_proj;       // (hidden, d_inner)
  Tensor out_proj_bias;  // (1, hidden) or empty
};

struct AttentionTensors {
  Tensor q_proj;  // (Hq·D, hidden)
  Tensor k_proj;  // (Hkv·D, hidden)
  Tensor v_proj;  // (Hkv·D, hidden)
  Tensor o_proj;  // (hidden, Hq·D)
  Tensor q_bias, k_bias, v_bias, o_bias;  // (1, width) or empty
  Tensor qkv_proj;  // (Hq·D + 2·Hkv·D, hidden): q, k, v stacked, or empty (not stacked)
  Tensor qkv_bias;  // (1, Hq·D + 2·Hkv·D): their biases stacked, or empty (not stacked, or no biases)
};

struct MlpTensors {
  Tensor gate_proj;  // (I, hidden), SwiGLU only (else empty)
  Tensor up_proj;    // (I, hidden)
  Tensor down_proj;  // (hidden, I)
  Tensor gate_bias, up_bias, down_bias;  // (1, width) or empty
  Tensor gate_up_proj;  // (2I, hidden): SwiGLU's gate, up stacked, or empty (not stacked, or relu²)
  Tensor gate_up_bias;  // (1, 2I): their biases stacked, or empty (not stacked, or no biases)
};

struct MoeTensors {
  Tensor router;           // (E, hidden) fp32 (not a matrix-type weight: routing runs in fp32); empty when E == 0
  Tensor correction_bias;  // (1, E) or empty
  Tensor experts_up;       // (E, I·hidden) or (E, 2I·hidden) [gate | up]: each row one expert's (I or 2I, hidden)
  Tensor experts_down;     // (E, hidden·I): each row one expert's (hidden, I)
  Tensor shared_up;        // (Is or 2Is, hidden), or empty
  Tensor shared_down;      // (hidden, Is), or empty
};

struct BlockTensors {
  BlockSpec spec;
  int64_t state_slot = 0;  // index among blocks of the same kind
  Tensor norm;             // (1, hidden)
  std::variant<MambaTensors, AttentionTensors, MlpTensors, MoeTensors> op;
};

struct ModelTensors {
  Tensor embedding;   // (vocab, hidden)
  Tensor final_norm;  // (1, hidden)
  Tensor lm_head;     // (vocab, hidden); may view the embedding (tied)
  std::vector<BlockTensors> blocks;
};

// How a backend holds one host tensor: `matrix` ones in its matrix type, the
// others as fp32; an absent (empty) host tensor is never passed.
using TensorPlacer = std::function<absl::StatusOr<Tensor>(const HostTensor& host, bool matrix)>;
// How a backend holds several host tensors as one, placed as TensorPlacer
// would: matrices (all of the same width) with their rows stacked in order,
// (sum of rows, width); vectors concatenated, (1, sum of lengths). Never
// passed an absent tensor.
using TensorStacker =
    std::function<absl::StatusOr<Tensor>(const std::vector<const HostTensor*>& parts, bool matrix)>;

// The (rows, cols) a placed tensor has: (shape[0], the rest) for a tensor of
// two or more dimensions, (1, n) for a vector.
Tensor ShapeOf(const HostTensor& host, ElementType type);

// The (rows, cols) of `parts` stacked as a TensorStacker places them.
Tensor StackedShape(const std::vector<const HostTensor*>& parts, bool matrix, ElementType type);

// Every tensor of `weights` through `place`, in the layout above; the
// projections that can stack through `stack` when one is given.
absl::StatusOr<ModelTensors> PlaceModelTensors(const ModelWeights& weights, const TensorPlacer& place,
                                               const TensorStacker& stack = nullptr);

}  // namespace tessera
