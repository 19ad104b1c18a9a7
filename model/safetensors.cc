// Validation-first safetensors reader: map, check every header field against
// the file, and only then hand out pointers. See safetensors.h for the rules.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace tessera {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies it as is");

using Json = nlohmann::json;

// The reference implementation's limit; a larger header is corrupt or hostile.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr uint64_t kLengthPrefixBytes = 8;
constexpr std::string_view kMetadataKey = "__metadata__";

// Every DType, for parsing by name.
constexpr DType kAllDTypes[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64,
                                DType::kI32, DType::kI16, DType::kI8,  DType::kU8,   DType::kBool};

// A JSON value quoted in an error message; never throws, even on odd strings.
std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// "<what> for tensor 'NAME' in FILE", the form of every per-tensor header error.
absl::Status TensorError(absl::StatusCode code, std::string_view what, std::string_view name,
                         std::string_view path) {
  return absl::Status(code, absl::StrFormat("%s for tensor '%s' in %s", what, name, path));
}
absl::Status BadTensor(std::string_view what, std::string_view name, std::string_view path) {
  return TensorError(absl::StatusCode::kInvalidArgument, what, name, path);
}

absl::StatusOr<DType> ParseDType(const Json& entry, std::string_view name, std::string_view path) {
  auto it = entry.find("dtype");
  if (it == entry.end()) return BadTensor("missing 'dtype' field", name, path);
  if (!it->is_string()) {
    return BadTensor(absl::StrCat("'dtype' is not a string (", it->type_name(), ")"), name, path);
  }
  const std::string& s = it->get_ref<const std::string&>();
  for (DType dtype : kAllDTypes) {
    if (DTypeName(dtype) == s) return dtype;
  }
  return BadTensor(absl::StrCat("unknown dtype '", s, "'"), name, path);
}

// shape: an array of integers >= 0 whose product fits in int64.
absl::StatusOr<std::vector<int64_t>> ParseShape(const Json& entry, std::string_view name,
                                                std::string_view path) {
  auto it = entry.find("shape");
  if (it == entry.end()) return BadTensor("missing 'shape' field", name, path);
  if (!it->is_array()) {
    return BadTensor(absl::StrCat("'shape' is not an array (", it->type_name(), ")"), name, path);
  }
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (const Json& d : *it) {
    if (d.is_number_unsigned()) {
      uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return BadTensor(absl::StrCat("dim ", v, " in 'shape' is too large"), name, path);
      }
      shape.push_back(static_cast<int64_t>(v));
    } else if (d.is_number_integer()) {
      return BadTensor(absl::StrCat("negative dim ", d.get<int64_t>(), " in 'shape'"), name, path);
    } else {
      return BadTensor(absl::StrCat("'shape' holds a non-integer (", Dump(d), ")"), name, path);
    }
    if (__builtin_mul_overflow(numel, shape.back(), &numel)) {
      return BadTensor("element count of 'shape' overflows int64", name, path);
    }
  }
  return shape;
}

// data_offsets: exactly two integers 0 <= begin <= end.
absl::StatusOr<std::pair<uint64_t, uint64_t>> ParseOffsets(const Json& entry,
                                                           std::string_view name,
                                                           std::string_view path) {
  auto it = entry.find("data_offsets");
  if (it == entry.end()) return BadTensor("missing 'data_offsets' field", name, path);
  if (!it->is_array() || it->size() != 2) {
    return BadTensor(absl::StrCat("'data_offsets' is not an array of 2 integers (", Dump(*it), ")"),
                     name, path);
  }
  for (const Json& v : *it) {
    if (!v.is_number_unsigned()) {
      return BadTensor(
          absl::StrCat("'data_offsets' ", Dump(*it), " holds a negative or non-integer value"),
          name, path);
    }
  }
  uint64_t begin = (*it)[0].get<uint64_t>();
  uint64_t end = (*it)[1].get<uint64_t>();
  if (begin > end) {
    return BadTensor(absl::StrCat("'data_offsets' [", begin, ", ", end, "] has begin > end"), name,
                     path);
  }
  return std::make_pair(begin, end);
}

// "__metadata__": an object of string -> string.
absl::StatusOr<std::map<std::string, std::string>> ParseMetadata(const Json& value,
                                                                 std::string_view path) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "'__metadata__' in %s is not a JSON object (it is %s)", path, value.type_name()));
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "'__metadata__' key '%s' in %s is not a string (it is %s)", key, path, v.type_name()));
    }
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

// One tensor entry, checked against a data section of `data_size` bytes.
absl::StatusOr<TensorInfo> ParseTensor(const std::string& name, const Json& entry,
                                       uint64_t data_size, std::string_view path) {
  if (!entry.is_object()) {
    return BadTensor(absl::StrCat("entry is not a JSON object (", entry.type_name(), ")"), name,
                     path);
  }
  TensorInfo t;
  t.name = name;
  ASSIGN_OR_RETURN(t.dtype, ParseDType(entry, name, path));
  ASSIGN_OR_RETURN(t.shape, ParseShape(entry, name, path));
  ASSIGN_OR_RETURN(auto offsets, ParseOffsets(entry, name, path));
  t.data_begin = offsets.first;
  t.data_end = offsets.second;
  if (t.data_end > data_size) {
    return TensorError(absl::StatusCode::kDataLoss,
                       absl::StrFormat("'data_offsets' [%d, %d] run past the %d-byte data section",
                                       t.data_begin, t.data_end, data_size),
                       name, path);
  }
  int64_t expected_bytes = 0;
  if (__builtin_mul_overflow(t.numel(), DTypeSize(t.dtype), &expected_bytes)) {
    return BadTensor(absl::StrFormat("byte size of shape %s of %s overflows int64",
                                     ShapeString(t.shape), DTypeName(t.dtype)),
                     name, path);
  }
  const uint64_t actual_bytes = t.data_end - t.data_begin;
  if (actual_bytes != static_cast<uint64_t>(expected_bytes)) {
    return BadTensor(absl::StrFormat("'data_offsets' [%d, %d] span %d bytes but shape %s of %s "
                                     "needs %d",
                                     t.data_begin, t.data_end, actual_bytes, ShapeString(t.shape),
                                     DTypeName(t.dtype), expected_bytes),
                     name, path);
  }
  return t;
}

// Loads a little-endian T from possibly unaligned memory.
template <typename T>
T LoadUnaligned(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) {  // inf or nan (payload kept)
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  }
  if (exponent != 0) {  // normal: rebias 15 -> 127
    return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
  }
  // zero or subnormal: mantissa * 2^-24, exact in fp32
  const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
  return sign ? -magnitude : magnitude;
}

float BFloat16ToFloat(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

absl::StatusOr<const TensorInfo*> FindOrNotFound(const SafetensorsFile& f, std::string_view name) {
  const TensorInfo* t = f.Find(name);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrFormat("tensor '%s' not found in %s", name, f.path()));
  }
  return t;
}

absl::Status WrongDType(const SafetensorsFile& f, const TensorInfo& t, std::string_view accepted) {
  return absl::InvalidArgumentError(absl::StrFormat("tensor '%s' in %s has dtype %s; expected %s",
                                                    t.name, f.path(), DTypeName(t.dtype),
                                                    accepted));
}

// Converts n elements of type Src at p with `convert`.
template <typename Out, typename Src, typename Convert>
std::vector<Out> ConvertAll(const uint8_t* p, int64_t n, Convert convert) {
  std::vector<Out> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    out[static_cast<size_t>(i)] = convert(LoadUnaligned<Src>(p + i * sizeof(Src)));
  }
  return out;
}

}  // namespace

int64_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16:
      return 2;
    case DType::kI8:
    case DType::kU8:
    case DType::kBool:
      return 1;
  }
  return 1;  // unreachable: every DType is handled above
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF64: return "F64";
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kI16: return "I16";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
  }
  return "?";  // unreachable: every DType is handled above
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile(path));
  RETURN_IF_ERROR(file->Map());
  RETURN_IF_ERROR(file->ParseHeader());
  RETURN_IF_ERROR(file->CheckNoOverlaps());
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

// Maps the whole file. The descriptor is closed once mapped: the mapping
// keeps the file alive, and a sharded checkpoint then holds no descriptors.
absl::Status SafetensorsFile::Map() {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path_));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat("cannot stat ", path_));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path_, " is not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kLengthPrefixBytes) {
    ::close(fd);
    return absl::DataLossError(absl::StrFormat(
        "%s is %d bytes, too short for the 8-byte safetensors header length", path_, size));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return absl::ErrnoToStatus(err, absl::StrCat("cannot mmap ", path_));
  map_ = map;
  map_size_ = size;
  return absl::OkStatus();
}

absl::Status SafetensorsFile::ParseHeader() {
  const uint8_t* base = static_cast<const uint8_t*>(map_);
  const uint64_t header_len = LoadUnaligned<uint64_t>(base);
  const uint64_t after_prefix = map_size_ - kLengthPrefixBytes;
  if (header_len > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "header length %d in %s exceeds the limit of %d bytes", header_len, path_,
        kMaxHeaderBytes));
  }
  if (header_len > after_prefix) {
    return absl::DataLossError(absl::StrFormat(
        "header length %d in %s runs past the end of the file (%d bytes follow the length)",
        header_len, path_, after_prefix));
  }
  const char* text = reinterpret_cast<const char*>(base + kLengthPrefixBytes);
  data_section_ = base + kLengthPrefixBytes + header_len;
  data_size_ = after_prefix - header_len;

  // nlohmann throws on malformed input; this is the boundary where that stops.
  Json header;
  try {
    header = Json::parse(text, text + header_len);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("header of %s is not valid JSON: %s", path_, e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("out of memory parsing the %d-byte header of %s", header_len, path_));
  }
  if (!header.is_object()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "header of %s is not a JSON object (it is %s)", path_, header.type_name()));
  }
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      ASSIGN_OR_RETURN(metadata_, ParseMetadata(value, path_));
    } else {
      ASSIGN_OR_RETURN(TensorInfo t, ParseTensor(key, value, data_size_, path_));
      tensors_.emplace(key, std::move(t));
    }
  }
  return absl::OkStatus();
}

// Sorted by begin, non-empty ranges must not overlap (empty ones cover no byte).
absl::Status SafetensorsFile::CheckNoOverlaps() const {
  std::vector<const TensorInfo*> ranges;
  for (const auto& [name, t] : tensors_) {
    if (t.data_end > t.data_begin) ranges.push_back(&t);
  }
  std::sort(ranges.begin(), ranges.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::tie(a->data_begin, a->data_end) < std::tie(b->data_begin, b->data_end);
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const TensorInfo& prev = *ranges[i - 1];
    const TensorInfo& cur = *ranges[i];
    if (cur.data_begin < prev.data_end) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "byte ranges of tensor '%s' [%d, %d) and tensor '%s' [%d, %d) overlap in %s", prev.name,
          prev.data_begin, prev.data_end, cur.name, cur.data_begin, cur.data_end, path_));
    }
  }
  return absl::OkStatus();
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<std::string> SafetensorsFile::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, t] : tensors_) names.push_back(name);
  return names;  // std::map iterates in sorted order
}

const uint8_t* SafetensorsFile::Data(const TensorInfo& t) const {
  return data_section_ + t.data_begin;
}

absl::StatusOr<std::vector<float>> ReadFloat32(const SafetensorsFile& f, std::string_view name) {
  ASSIGN_OR_RETURN(const TensorInfo* t, FindOrNotFound(f, name));
  const uint8_t* p = f.Data(*t);
  const int64_t n = t->numel();
  switch (t->dtype) {
    case DType::kF32:
      return ConvertAll<float, float>(p, n, [](float v) { return v; });
    case DType::kF16:
      return ConvertAll<float, uint16_t>(p, n, HalfToFloat);
    case DType::kBF16:
      return ConvertAll<float, uint16_t>(p, n, BFloat16ToFloat);
    case DType::kF64:
      return ConvertAll<float, double>(p, n, [](double v) { return static_cast<float>(v); });
    case DType::kI64:
    case DType::kI32:
    case DType::kI16:
    case DType::kI8:
    case DType::kU8:
    case DType::kBool:
      return WrongDType(f, *t, "F32, F16, BF16 or F64");
  }
  return WrongDType(f, *t, "F32, F16, BF16 or F64");  // unreachable
}

bool ConvertToFloat32(const uint8_t* p, DType dtype, int64_t n, float* out) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out, p, static_cast<size_t>(n) * sizeof(float));
      return true;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = HalfToFloat(LoadUnaligned<uint16_t>(p + 2 * i));
      return true;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = BFloat16ToFloat(LoadUnaligned<uint16_t>(p + 2 * i));
      return true;
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(LoadUnaligned<double>(p + 8 * i));
      return true;
    default:
      return false;
  }
}

absl::StatusOr<std::vector<int64_t>> ReadInt64(const SafetensorsFile& f, std::string_view name) {
  ASSIGN_OR_RETURN(const TensorInfo* t, FindOrNotFound(f, name));
  const uint8_t* p = f.Data(*t);
  const int64_t n = t->numel();
  auto widen = [](auto v) { return static_cast<int64_t>(v); };
  switch (t->dtype) {
    case DType::kI64:
      return ConvertAll<int64_t, int64_t>(p, n, widen);
    case DType::kI32:
      return ConvertAll<int64_t, int32_t>(p, n, widen);
    case DType::kI16:
      return ConvertAll<int64_t, int16_t>(p, n, widen);
    case DType::kI8:
      return ConvertAll<int64_t, int8_t>(p, n, widen);
    case DType::kU8:
      return ConvertAll<int64_t, uint8_t>(p, n, widen);
    case DType::kBool:
      return ConvertAll<int64_t, uint8_t>(p, n, [](uint8_t v) { return int64_t{v != 0}; });
    case DType::kF64:
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return WrongDType(f, *t, "I64, I32, I16, I8, U8 or BOOL");
  }
  return WrongDType(f, *t, "I64, I32, I16, I8, U8 or BOOL");  // unreachable
}

}  // namespace tessera
