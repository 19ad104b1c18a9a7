// Resolves a Hugging Face model directory to validated, mapped safetensors
// files once at Open, then serves fp32 tensors by name. See checkpoint.h.
#include "model/checkpoint.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr std::string_view kSingleFileName = "model.safetensors";
constexpr std::string_view kIndexFileName = "model.safetensors.index.json";
// Real indexes are a few hundred KB; anything near this is not an index.
constexpr uintmax_t kMaxIndexBytes = 100'000'000;

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Keeps `status`'s code, puts `context` in front of its message.
absl::Status WithContext(const absl::Status& status, std::string_view context) {
  return absl::Status(status.code(), absl::StrFormat("%s: %s", context, status.message()));
}

bool IsRegularFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

absl::StatusOr<std::string> ReadIndexText(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot stat ", path, ": ", ec.message()));
  if (size > kMaxIndexBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s is %d bytes, over the %d-byte limit for an index", path, size, kMaxIndexBytes));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf())) {
    return absl::UnavailableError(absl::StrCat("cannot read ", path));
  }
  return std::move(text).str();
}

// A shard must be a plain file name inside the model directory.
absl::Status CheckShardName(const std::string& shard, std::string_view tensor,
                            std::string_view index_path) {
  if (shard.empty() || shard == "." || shard == ".." ||
      shard.find_first_of("/\\") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "'weight_map' in %s maps tensor '%s' to '%s', which is not a file name in the model "
        "directory",
        index_path, tensor, shard));
  }
  return absl::OkStatus();
}

// The "weight_map" object of an index: tensor name -> shard file name.
absl::StatusOr<std::map<std::string, std::string>> ParseWeightMap(const std::string& text,
                                                                  const std::string& index_path) {
  Json index;
  try {  // nlohmann throws on malformed input; this is the boundary where that stops
    index = Json::parse(text);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is not valid JSON: %s", index_path, e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("out of memory parsing ", index_path));
  }
  if (!index.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, " is not a JSON object"));
  }
  auto it = index.find("weight_map");
  if (it == index.end() || !it->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, " has no 'weight_map' object"));
  }
  if (it->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'weight_map' in ", index_path, " is empty"));
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [tensor, shard] : it->items()) {
    if (!shard.is_string()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "'weight_map' in %s maps tensor '%s' to a %s, not a file name", index_path, tensor,
          shard.type_name()));
    }
    RETURN_IF_ERROR(CheckShardName(shard.get<std::string>(), tensor, index_path));
    weight_map[tensor] = shard.get<std::string>();
  }
  return weight_map;
}

}  // namespace

// --- HostTensor: copies and moves re-point `data` when it views `owned`. ---

HostTensor::HostTensor(const HostTensor& other)
    : shape(other.shape), data(other.data), owned(other.owned), stored(other.stored),
      stored_dtype(other.stored_dtype) {
  if (!other.owned.empty() && other.data == other.owned.data()) data = owned.data();
}

HostTensor::HostTensor(HostTensor&& other) noexcept
    : shape(std::move(other.shape)), data(other.data), stored(other.stored), stored_dtype(other.stored_dtype) {
  const bool views_owned = !other.owned.empty() && other.data == other.owned.data();
  owned = std::move(other.owned);
  if (views_owned) data = owned.data();
  other.data = nullptr;
  other.owned.clear();
}

HostTensor& HostTensor::operator=(const HostTensor& other) {
  if (this != &other) *this = HostTensor(other);
  return *this;
}

HostTensor& HostTensor::operator=(HostTensor&& other) noexcept {
  if (this == &other) return *this;
  const bool views_owned = !other.owned.empty() && other.data == other.owned.data();
  shape = std::move(other.shape);
  owned = std::move(other.owned);
  data = views_owned ? owned.data() : other.data;
  stored = other.stored;
  stored_dtype = other.stored_dtype;
  other.data = nullptr;
  other.owned.clear();
  return *this;
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// --- Checkpoint ---

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& model_dir) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint(model_dir));
  const fs::path dir(model_dir);
  const fs::path single = dir / kSingleFileName;
  const fs::path index = dir / kIndexFileName;
  if (IsRegularFile(single)) {
    RETURN_IF_ERROR(ckpt->OpenSingle(single.string()));
  } else if (IsRegularFile(index)) {
    RETURN_IF_ERROR(ckpt->OpenSharded(index.string()));
  } else if (IsRegularFile(dir / "pytorch_model.bin") || IsRegularFile(dir / "pytorch_model.bin.index.json")) {
    // PyTorch pickles are code as much as data: Tessera reads safetensors only.
    return absl::FailedPreconditionError(absl::StrFormat(
        "model directory %s has PyTorch weights (pytorch_model.bin) but no %s; Tessera reads safetensors only. "
        "Convert them once with: python3 -c \"import torch; from safetensors.torch import save_file; "
        "sd = torch.load('%s/pytorch_model.bin', map_location='cpu', weights_only=True); "
        "save_file({k: v.contiguous().clone() for k, v in sd.items()}, '%s/%s')\" "
        "(a sharded pytorch_model-*.bin needs one file per shard and a model.safetensors.index.json)",
        model_dir, kSingleFileName, model_dir, model_dir, kSingleFileName));
  } else {
    return absl::NotFoundError(absl::StrFormat("no %s or %s in model directory %s",
                                               kSingleFileName, kIndexFileName, model_dir));
  }
  return ckpt;
}

absl::Status Checkpoint::OpenSingle(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
  for (const std::string& name : file->TensorNames()) tensor_file_[name] = file.get();
  files_[std::string(kSingleFileName)] = std::move(file);
  return absl::OkStatus();
}

absl::Status Checkpoint::OpenSharded(const std::string& index_path) {
  ASSIGN_OR_RETURN(std::string text, ReadIndexText(index_path));
  ASSIGN_OR_RETURN(auto weight_map, ParseWeightMap(text, index_path));
  for (const auto& [tensor, shard] : weight_map) {
    auto file = OpenShard(shard);
    if (!file.ok()) {
      return WithContext(file.status(),
                         absl::StrFormat("shard '%s' (listed in %s for tensor '%s')", shard,
                                         index_path, tensor));
    }
    if ((*file)->Find(tensor) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s maps tensor '%s' to %s, which does not contain it", index_path,
                          tensor, (*file)->path()));
    }
    tensor_file_[tensor] = *file;
  }
  return absl::OkStatus();
}

// Opens each shard once; later tensors in the same shard reuse it.
absl::StatusOr<const SafetensorsFile*> Checkpoint::OpenShard(const std::string& file_name) {
  auto it = files_.find(file_name);
  if (it != files_.end()) return it->second.get();
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                   SafetensorsFile::Open((fs::path(dir_) / file_name).string()));
  const SafetensorsFile* raw = file.get();
  files_[file_name] = std::move(file);
  return raw;
}

bool Checkpoint::Contains(std::string_view name) const {
  return tensor_file_.find(name) != tensor_file_.end();
}

const TensorInfo* Checkpoint::Info(std::string_view name) const {
  auto it = tensor_file_.find(name);
  return it == tensor_file_.end() ? nullptr : it->second->Find(name);
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensor_file_.size());
  for (const auto& [name, file] : tensor_file_) names.push_back(name);
  return names;  // std::map iterates in sorted order
}

absl::Status Checkpoint::CheckShape(std::string_view name, absl::Span<const int64_t> expected_shape) const {
  auto it = tensor_file_.find(name);
  if (it != tensor_file_.end()) {
    const TensorInfo* info = it->second->Find(name);
    if (info != nullptr && absl::Span<const int64_t>(info->shape) != expected_shape) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "tensor '%s' in %s has shape %s, the config implies %s", name, it->second->path(),
          ShapeString(info->shape), ShapeString(expected_shape)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<HostTensor> Checkpoint::LoadFloat32(
    std::string_view name, absl::Span<const int64_t> expected_shape) const {
  RETURN_IF_ERROR(CheckShape(name, expected_shape));
  return LoadFloat32(name);
}

absl::StatusOr<HostTensor> Checkpoint::LoadAsStored(std::string_view name,
                                                    absl::Span<const int64_t> expected_shape) const {
  RETURN_IF_ERROR(CheckShape(name, expected_shape));
  auto it = tensor_file_.find(name);
  if (it == tensor_file_.end()) {
    return absl::NotFoundError(absl::StrFormat("tensor '%s' not found in %s", name, dir_));
  }
  const TensorInfo* info = it->second->Find(name);
  if (info == nullptr) {
    return absl::InternalError(absl::StrFormat("tensor '%s' vanished from %s after Open", name, it->second->path()));
  }
  if (info->dtype != DType::kF32 && info->dtype != DType::kBF16 && info->dtype != DType::kF16) {
    return absl::InvalidArgumentError(absl::StrFormat("tensor '%s' in %s is %s; weights must be F32, BF16 or F16",
                                                      name, it->second->path(), DTypeName(info->dtype)));
  }
  HostTensor t;
  t.shape = info->shape;
  t.stored = it->second->Data(*info);
  t.stored_dtype = info->dtype;
  return t;
}

absl::StatusOr<HostTensor> Checkpoint::LoadFloat32(std::string_view name) const {
  auto it = tensor_file_.find(name);
  if (it == tensor_file_.end()) {
    return absl::NotFoundError(absl::StrFormat("tensor '%s' not found in %s", name, dir_));
  }
  const SafetensorsFile& file = *it->second;
  const TensorInfo* info = file.Find(name);
  if (info == nullptr) {  // Open checked every listed tensor; this is an invariant
    return absl::InternalError(
        absl::StrFormat("tensor '%s' vanished from %s after Open", name, file.path()));
  }
  HostTensor t;
  t.shape = info->shape;
  const uint8_t* bytes = file.Data(*info);
  if (info->dtype == DType::kF32 && reinterpret_cast<uintptr_t>(bytes) % alignof(float) == 0) {
    t.data = reinterpret_cast<const float*>(bytes);  // zero-copy view into the mapping
    return t;
  }
  ASSIGN_OR_RETURN(t.owned, ReadFloat32(file, name));
  t.data = t.owned.data();
  return t;
}

}  // namespace tessera
