// Headers only: Checkpoint::Open maps the files and parses their headers; no
// tensor is converted or read.
#include "model/inspection.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "model/checkpoint.h"
#include "model/model_weights.h"
#include "model/safetensors.h"

namespace tessera {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

bool UsableDtype(DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16 || d == DType::kF64; }

int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// "backbone.layers.7." prefixes of the layers that are not served.
std::vector<std::string> UnservedPrefixes(const ModelConfig& c) {
  if (MoeLayersServed(c)) return {};
  std::set<int64_t> layers;
  for (const BlockSpec& b : c.blocks) {
    if (b.kind == BlockKind::kMoe) layers.insert(b.layer);
  }
  std::vector<std::string> prefixes;
  for (const BlockSpec& b : c.blocks) {
    if (layers.count(b.layer) == 0) continue;
    const std::string& p = b.prefix;  // "<root>layers.N.<op>." or "<root>layers.N."
    const size_t at = p.find("layers.");
    if (at == std::string::npos) continue;
    const size_t dot = p.find('.', at + 7);
    if (dot != std::string::npos) prefixes.push_back(p.substr(0, dot + 1));
  }
  return prefixes;
}

WeightsInspection InspectWeights(const std::string& dir, const ModelConfig& config) {
  WeightsInspection w;
  std::vector<TensorSpec> expected = ExpectedTensors(config);
  for (const TensorSpec& spec : expected) w.expected_parameters += Numel(spec.shape);
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) {
    w.absent = absl::IsNotFound(ckpt.status());
    w.status = std::string(ckpt.status().message());
    return w;
  }
  w.present = true;
  w.status = "ok";
  const std::vector<std::string> unserved = UnservedPrefixes(config);
  std::set<std::string> expected_names;
  for (const TensorSpec& spec : expected) expected_names.insert(spec.name);
  for (const std::string& name : (*ckpt)->TensorNames()) {
    const TensorInfo* info = (*ckpt)->Info(name);
    if (info == nullptr) continue;
    ++w.tensors;
    w.parameters += info->numel();
    w.bytes_by_dtype[std::string(DTypeName(info->dtype))] += info->numel() * DTypeSize(info->dtype);
    bool in_unserved = false;
    for (const std::string& prefix : unserved) in_unserved = in_unserved || name.rfind(prefix, 0) == 0;
    if (in_unserved) {
      ++w.unserved_layer_tensors;
    } else if (expected_names.count(name) == 0) {
      w.unexpected.push_back(name);
    }
  }
  for (const TensorSpec& spec : expected) {
    const TensorInfo* info = (*ckpt)->Info(spec.name);
    if (info == nullptr) {
      w.missing.push_back(spec.name);
      continue;
    }
    if (info->shape != spec.shape) {
      w.wrong_shape.push_back(absl::StrCat(spec.name, ": expected ", ShapeText(spec.shape), ", found ",
                                           ShapeText(info->shape)));
    }
    if (!UsableDtype(info->dtype)) w.bad_dtype.push_back(absl::StrCat(spec.name, ": ", std::string(DTypeName(info->dtype))));
  }
  return w;
}

int64_t KvBytesBf16(const ModelConfig& c) {
  return c.CountBlocks(BlockKind::kAttention) * 2 * c.attention.num_kv_heads * c.attention.head_dim * 2;
}

int64_t StateBytes(const ModelConfig& c) {
  const MambaConfig& m = c.mamba;
  return c.CountBlocks(BlockKind::kMamba) *
         ((m.conv_kernel - 1) * m.conv_channels() + m.num_heads * m.head_dim * m.state_size) * 4;
}

}  // namespace

absl::StatusOr<Inspection> InspectModel(const std::string& model_dir) {
  Inspection in;
  in.model_dir = model_dir;
  ASSIGN_OR_RETURN(in.config, LoadModelConfig(model_dir));
  in.weights = InspectWeights(model_dir, in.config);
  in.kv_bytes_per_token_bf16 = KvBytesBf16(in.config);
  in.state_bytes_per_request = StateBytes(in.config);
  return in;
}

}  // namespace tessera
