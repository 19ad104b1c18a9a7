// SafetensorsFile against hand-written files, malformed ones included.
//
// Why: checkpoints are untrusted input, so each validation rule in
// worker/safetensors.h has a test that breaks exactly that rule and checks the
// status code and that the message names the file and the tensor. Valid files
// are built byte by byte here (no Python, no writer in the library), and a
// seeded random-corruption loop checks Open never crashes or hands out an
// out-of-bounds range.
#include "model/safetensors.h"

#include <stdlib.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// --- Building files by hand ---

template <typename T>
std::string Bytes(std::initializer_list<T> values) {
  std::string out;
  for (T v : values) out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  return out;
}

std::string LengthPrefix(uint64_t n) { return Bytes<uint64_t>({n}); }

// u64 length + header text + data, with the header exactly as given.
std::string RawFile(const std::string& header, const std::string& data) {
  return LengthPrefix(header.size()) + header + data;
}

struct RawTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// A valid file: tensors back to back in the given order, header space-padded
// to a multiple of 8 (the data section is then 8-byte aligned in the file).
std::string BuildFile(const std::vector<RawTensor>& tensors, const std::string& metadata = "") {
  std::vector<std::string> entries;
  if (!metadata.empty()) entries.push_back(absl::StrCat("\"__metadata__\":", metadata));
  std::string data;
  for (const RawTensor& t : tensors) {
    entries.push_back(absl::StrCat("\"", t.name, "\":{\"dtype\":\"", t.dtype, "\",\"shape\":[",
                                   absl::StrJoin(t.shape, ","), "],\"data_offsets\":[",
                                   data.size(), ",", data.size() + t.bytes.size(), "]}"));
    data += t.bytes;
  }
  std::string header = absl::StrCat("{", absl::StrJoin(entries, ","), "}");
  header.resize((header.size() + 7) / 8 * 8, ' ');
  return RawFile(header, data);
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "tessera_safetensors_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string Write(const std::string& contents, const std::string& name = "t.safetensors") {
    const std::string path = (fs::path(dir_) / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    EXPECT_TRUE(out.good());
    return path;
  }

  std::string dir_;
};

// The status has `code` and its message contains every one of `needles`.
void ExpectError(const absl::Status& status, absl::StatusCode code,
                 const std::vector<std::string>& needles) {
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), code) << status;
  for (const std::string& n : needles) EXPECT_THAT(std::string(status.message()), HasSubstr(n)) << status;
}

// A small valid two-tensor file used as the base of several corruptions.
std::string TwoF32Tensors() {
  return BuildFile({{"a", "F32", {2}, Bytes<float>({1.f, 2.f})},
                    {"b", "F32", {1, 2}, Bytes<float>({3.f, 4.f})}});
}

// --- DType ---

TEST(DTypeTest, SizesAndNames) {
  EXPECT_EQ(DTypeSize(DType::kF64), 8);
  EXPECT_EQ(DTypeSize(DType::kF32), 4);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2);
  EXPECT_EQ(DTypeSize(DType::kF16), 2);
  EXPECT_EQ(DTypeSize(DType::kI64), 8);
  EXPECT_EQ(DTypeSize(DType::kBool), 1);
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_EQ(DTypeName(DType::kBool), "BOOL");
  EXPECT_EQ(DTypeName(DType::kU8), "U8");
}

// --- File-level corruption ---

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  const std::string path = (fs::path(dir_) / "absent.safetensors").string();
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kNotFound, {path});
}

TEST_F(SafetensorsTest, DirectoryIsRejected) {
  ExpectError(SafetensorsFile::Open(dir_).status(), absl::StatusCode::kInvalidArgument, {dir_});
}

TEST_F(SafetensorsTest, EmptyFileIsTruncated) {
  const std::string path = Write("");
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kDataLoss, {path});
}

TEST_F(SafetensorsTest, ShorterThanLengthPrefixIsTruncated) {
  const std::string path = Write(LengthPrefix(2).substr(0, 5));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kDataLoss,
              {path, "8-byte"});
}

TEST_F(SafetensorsTest, HeaderCutOffIsTruncated) {
  const std::string full = TwoF32Tensors();
  const uint64_t header_len = full.size() - 8 - 16;  // minus prefix and two 8-byte tensors
  const std::string path = Write(full.substr(0, 8 + header_len / 2));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kDataLoss,
              {path, absl::StrCat("header length ", header_len)});
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  const std::string path = Write(LengthPrefix(1000) + "{}");
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kDataLoss,
              {path, "1000", "past the end"});
}

TEST_F(SafetensorsTest, AbsurdHeaderLength) {
  const std::string path = Write(LengthPrefix(uint64_t{1} << 62) + "{}");
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "exceeds the limit"});
  const std::string max_path = Write(LengthPrefix(~uint64_t{0}) + "{}", "max.safetensors");
  ExpectError(SafetensorsFile::Open(max_path).status(), absl::StatusCode::kInvalidArgument,
              {max_path});
}

TEST_F(SafetensorsTest, InvalidJson) {
  const std::string path = Write(RawFile("{\"a\": {\"dtype\": \"F32\",", ""));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "not valid JSON"});
}

TEST_F(SafetensorsTest, EmptyHeaderIsInvalidJson) {
  const std::string path = Write(RawFile("", ""));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "not valid JSON"});
}

TEST_F(SafetensorsTest, InvalidUtf8InHeader) {
  const std::string path = Write(RawFile("{\"\xff\xfe\":{}}", ""));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument, {path});
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  const std::string path = Write(RawFile("[1, 2, 3]", ""));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "not a JSON object"});
}

TEST_F(SafetensorsTest, DeeplyNestedHeaderDoesNotOverflowTheStack) {
  const std::string nested = std::string(200000, '[') + std::string(200000, ']');
  const std::string path = Write(RawFile(absl::StrCat("{\"m\":", nested, "}"), ""));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "'m'"});
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  const std::string path = Write(RawFile(header, std::string(12, '\0')));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "'a'", "'b'", "overlap"});
}

TEST_F(SafetensorsTest, IdenticalOffsetsOverlap) {
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})";
  const std::string path = Write(RawFile(header, std::string(8, '\0')));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "'a'", "'b'", "overlap"});
}

TEST_F(SafetensorsTest, OffsetsBeyondDataSection) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  const std::string path = Write(RawFile(header, std::string(12, '\0')));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kDataLoss,
              {path, "tensor 'w'", "12-byte data section"});
}

TEST_F(SafetensorsTest, SizeMismatchWithShapeTimesDtype) {
  const std::string header = R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})";
  const std::string path = Write(RawFile(header, std::string(8, '\0')));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "tensor 'w'", "span 8 bytes", "needs 6"});
}

TEST_F(SafetensorsTest, UnknownDtype) {
  for (const std::string dtype : {"F8_E4M3", "U16", "f32", ""}) {
    const std::string header = absl::StrCat(R"({"w":{"dtype":")", dtype,
                                            R"(","shape":[1],"data_offsets":[0,1]}})");
    const std::string path = Write(RawFile(header, std::string(1, '\0')));
    ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
                {absl::StrCat("unknown dtype '", dtype, "' for tensor 'w' in ", path)});
  }
}

TEST_F(SafetensorsTest, NegativeDim) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}})";
  const std::string path = Write(RawFile(header, std::string(16, '\0')));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "tensor 'w'", "negative dim -2"});
}

TEST_F(SafetensorsTest, MissingShapeField) {
  const std::string header = R"({"w":{"dtype":"F32","data_offsets":[0,4]}})";
  const std::string path = Write(RawFile(header, std::string(4, '\0')));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "tensor 'w'", "missing 'shape'"});
}

// One malformed header entry per case: wrong JSON types, missing fields,
// impossible numbers. Each must be InvalidArgument naming the file and tensor.
struct BadEntryCase {
  std::string label;
  std::string entry;  // the JSON value for tensor "w"
  std::string needle;
};

class SafetensorsBadEntryTest : public SafetensorsTest,
                                public ::testing::WithParamInterface<BadEntryCase> {};

TEST_P(SafetensorsBadEntryTest, RejectedNamingFileAndTensor) {
  const std::string header = absl::StrCat(R"({"w":)", GetParam().entry, "}");
  const std::string path = Write(RawFile(header, std::string(64, '\0')));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "tensor 'w'", GetParam().needle});
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, SafetensorsBadEntryTest,
    ::testing::Values(
        BadEntryCase{"EntryNotObject", R"([1,2])", "not a JSON object"},
        BadEntryCase{"MissingDtype", R"({"shape":[1],"data_offsets":[0,4]})", "missing 'dtype'"},
        BadEntryCase{"DtypeNotString", R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})",
                     "'dtype' is not a string"},
        BadEntryCase{"ShapeNotArray", R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})",
                     "'shape' is not an array"},
        BadEntryCase{"ShapeHoldsFloat", R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})",
                     "non-integer"},
        BadEntryCase{"ShapeHoldsNull", R"({"dtype":"F32","shape":[null],"data_offsets":[0,4]})",
                     "non-integer"},
        BadEntryCase{"DimBeyondInt64",
                     R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]})",
                     "too large"},
        BadEntryCase{"ShapeProductOverflow",
                     R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})",
                     "overflows"},
        BadEntryCase{"ByteSizeOverflow",
                     R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]})",
                     "overflows"},
        BadEntryCase{"MissingOffsets", R"({"dtype":"F32","shape":[1]})",
                     "missing 'data_offsets'"},
        BadEntryCase{"OffsetsNotArray", R"({"dtype":"F32","shape":[1],"data_offsets":4})",
                     "not an array of 2"},
        BadEntryCase{"OffsetsThreeValues",
                     R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})", "not an array of 2"},
        BadEntryCase{"OffsetsOneValue", R"({"dtype":"F32","shape":[1],"data_offsets":[4]})",
                     "not an array of 2"},
        BadEntryCase{"OffsetNegative", R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})",
                     "negative or non-integer"},
        BadEntryCase{"OffsetFloat", R"({"dtype":"F32","shape":[1],"data_offsets":[0,4.0]})",
                     "negative or non-integer"},
        BadEntryCase{"OffsetString", R"({"dtype":"F32","shape":[1],"data_offsets":["0",4]})",
                     "negative or non-integer"},
        BadEntryCase{"BeginAfterEnd", R"({"dtype":"F32","shape":[0],"data_offsets":[8,4]})",
                     "begin > end"}),
    [](const ::testing::TestParamInfo<BadEntryCase>& info) { return info.param.label; });

TEST_F(SafetensorsTest, MetadataMustHoldStrings) {
  const std::string path = Write(RawFile(R"({"__metadata__":{"format":"pt","n":3}})", ""));
  ExpectError(SafetensorsFile::Open(path).status(), absl::StatusCode::kInvalidArgument,
              {path, "'n'", "not a string"});
  const std::string path2 = Write(RawFile(R"({"__metadata__":[1]})", ""), "m2.safetensors");
  ExpectError(SafetensorsFile::Open(path2).status(), absl::StatusCode::kInvalidArgument,
              {path2, "__metadata__"});
}

// --- Valid files ---

TEST_F(SafetensorsTest, ValidFileConvertsEveryFloatDtype) {
  const std::string path = Write(BuildFile(
      {{"f32", "F32", {2, 2}, Bytes<float>({1.5f, -2.f, 0.f, 1e30f})},
       {"bf16", "BF16", {5}, Bytes<uint16_t>({0x3F80, 0xC000, 0x7F80, 0xFF80, 0x0000})},
       {"f16", "F16", {10},
        Bytes<uint16_t>({0x3C00, 0xC000, 0x0001, 0x03FF, 0x8001, 0x0400, 0x7BFF, 0x7C00,
                         0xFC00, 0x8000})},
       {"f16nan", "F16", {1}, Bytes<uint16_t>({0x7E00})},
       {"f64", "F64", {2}, Bytes<double>({0.25, -1e300})}},
      R"({"format":"pt","lengths":"[1, 2]"})"));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const SafetensorsFile& f = **file;
  EXPECT_EQ(f.path(), path);
  EXPECT_THAT(f.TensorNames(), ElementsAre("bf16", "f16", "f16nan", "f32", "f64"));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("lengths"), "[1, 2]");

  const TensorInfo* f32_info = f.Find("f32");
  ASSERT_NE(f32_info, nullptr);
  EXPECT_EQ(f32_info->dtype, DType::kF32);
  EXPECT_THAT(f32_info->shape, ElementsAre(2, 2));
  EXPECT_EQ(f32_info->numel(), 4);
  EXPECT_EQ(f32_info->data_end - f32_info->data_begin, 16u);
  EXPECT_EQ(f.Find("absent"), nullptr);

  auto f32 = ReadFloat32(f, "f32");
  ASSERT_TRUE(f32.ok()) << f32.status();
  EXPECT_THAT(*f32, ElementsAre(1.5f, -2.f, 0.f, 1e30f));

  auto bf16 = ReadFloat32(f, "bf16");
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_THAT(*bf16, ElementsAre(1.f, -2.f, inf, -inf, 0.f));

  auto f16 = ReadFloat32(f, "f16");
  ASSERT_TRUE(f16.ok()) << f16.status();
  const float tiny = std::ldexp(1.f, -24);  // smallest f16 subnormal
  EXPECT_THAT(*f16, ElementsAre(1.f, -2.f, tiny, 1023 * tiny, -tiny, std::ldexp(1.f, -14),
                                65504.f, inf, -inf, 0.f));
  EXPECT_TRUE(std::signbit((*f16)[9]));  // 0x8000 is -0

  auto f16nan = ReadFloat32(f, "f16nan");
  ASSERT_TRUE(f16nan.ok()) << f16nan.status();
  EXPECT_TRUE(std::isnan((*f16nan)[0]));

  auto f64 = ReadFloat32(f, "f64");
  ASSERT_TRUE(f64.ok()) << f64.status();
  EXPECT_EQ((*f64)[0], 0.25f);
  EXPECT_EQ((*f64)[1], -inf);  // out of fp32 range
}

TEST_F(SafetensorsTest, ValidFileReadsEveryIntegerDtype) {
  const std::string path = Write(BuildFile({
      {"i64", "I64", {3}, Bytes<int64_t>({-1, 0, int64_t{1} << 40})},
      {"i32", "I32", {2}, Bytes<int32_t>({-7, 2147483647})},
      {"i16", "I16", {1}, Bytes<int16_t>({-300})},
      {"i8", "I8", {2}, Bytes<int8_t>({-128, 127})},
      {"u8", "U8", {1}, Bytes<uint8_t>({255})},
      {"bool", "BOOL", {3}, Bytes<uint8_t>({0, 1, 1})},
  }));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const SafetensorsFile& f = **file;
  EXPECT_THAT(*ReadInt64(f, "i64"), ElementsAre(-1, 0, int64_t{1} << 40));
  EXPECT_THAT(*ReadInt64(f, "i32"), ElementsAre(-7, 2147483647));
  EXPECT_THAT(*ReadInt64(f, "i16"), ElementsAre(-300));
  EXPECT_THAT(*ReadInt64(f, "i8"), ElementsAre(-128, 127));
  EXPECT_THAT(*ReadInt64(f, "u8"), ElementsAre(255));
  EXPECT_THAT(*ReadInt64(f, "bool"), ElementsAre(0, 1, 1));
}

TEST_F(SafetensorsTest, ReadWithWrongDtypeCategoryOrName) {
  const std::string path = Write(BuildFile({{"ids", "I64", {1}, Bytes<int64_t>({5})},
                                            {"w", "F32", {1}, Bytes<float>({5.f})}}));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ExpectError(ReadFloat32(**file, "ids").status(), absl::StatusCode::kInvalidArgument,
              {path, "tensor 'ids'", "I64"});
  ExpectError(ReadInt64(**file, "w").status(), absl::StatusCode::kInvalidArgument,
              {path, "tensor 'w'", "F32"});
  ExpectError(ReadFloat32(**file, "nope").status(), absl::StatusCode::kNotFound,
              {path, "tensor 'nope'"});
  ExpectError(ReadInt64(**file, "nope").status(), absl::StatusCode::kNotFound,
              {path, "tensor 'nope'"});
}

TEST_F(SafetensorsTest, PaddedHeaderTrailingBytesAndEmptyTensorsAreAllowed) {
  // Header padded with spaces to an odd length (unaligned data section),
  // trailing bytes after the last tensor, a scalar, and zero-size tensors
  // whose empty ranges sit inside and at the end of others.
  const std::string header =
      R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
      R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[6,6]},)"
      R"("z":{"dtype":"I64","shape":[0],"data_offsets":[12,12]}}    )";
  const std::string path =
      Write(RawFile(header, Bytes<float>({7.f, 8.f, 9.f}) + std::string(5, 'x')));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->data_size(), 17u);
  EXPECT_THAT(*ReadFloat32(**file, "s"), ElementsAre(7.f));
  EXPECT_THAT(*ReadFloat32(**file, "v"), ElementsAre(8.f, 9.f));
  EXPECT_TRUE(ReadFloat32(**file, "e")->empty());
  EXPECT_TRUE(ReadInt64(**file, "z")->empty());
  EXPECT_EQ((*file)->Find("s")->numel(), 1);
  EXPECT_TRUE((*file)->metadata().empty());
}

TEST_F(SafetensorsTest, EmptyObjectHeaderIsAValidEmptyFile) {
  auto file = SafetensorsFile::Open(Write(RawFile("{}", "")));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->TensorNames().empty());
}

// --- Real fixtures ---

TEST(SafetensorsFixtureTest, ReferenceFileHasLengthsAndInputIds) {
  for (const char* model : {"bamba-tiny", "mamba2-tiny", "nemotronh-tiny"}) {
    const std::string path =
        absl::StrCat(TESSERA_TEST_DATA_DIR, "/hf-tiny/", model, "/reference.safetensors");
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ((*file)->metadata().count("lengths"), 1u) << path;
    auto ids = ReadInt64(**file, "input_ids.77");
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(ids->size(), 77u);
    const TensorInfo* logits = (*file)->Find("logits.200");
    ASSERT_NE(logits, nullptr);
    EXPECT_EQ(logits->shape.size(), 2u);
    EXPECT_EQ(logits->shape[0], 200);
  }
}

TEST(SafetensorsFixtureTest, EveryModelTensorReadsAsFloat32) {
  for (const char* model : {"bamba-tiny", "mamba2-tiny", "nemotronh-tiny"}) {
    const std::string path =
        absl::StrCat(TESSERA_TEST_DATA_DIR, "/hf-tiny/", model, "/model.safetensors");
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_FALSE((*file)->TensorNames().empty());
    for (const std::string& name : (*file)->TensorNames()) {
      auto values = ReadFloat32(**file, name);
      ASSERT_TRUE(values.ok()) << values.status();
      EXPECT_EQ(static_cast<int64_t>(values->size()), (*file)->Find(name)->numel()) << name;
    }
  }
}

// --- Random corruption ---

// Applies one random corruption: byte flips (mostly in the header, where they
// matter), truncation, a random header length, a spliced-in JSON token, or a
// changed digit (which keeps the JSON valid and so reaches the shape, offset,
// size and overlap checks).
std::string Corrupt(const std::string& valid, uint64_t header_len, std::mt19937_64& rng) {
  std::string out = valid;
  auto pick = [&rng](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
  switch (pick(6)) {
    case 0: {
      const uint64_t flips = 1 + pick(8);
      for (uint64_t i = 0; i < flips; ++i) {
        const uint64_t span = pick(4) == 0 ? out.size() : 8 + header_len;
        out[pick(span)] ^= static_cast<char>(1 + pick(255));
      }
      break;
    }
    case 1:
      out.resize(pick(out.size()));
      break;
    case 2: {
      const uint64_t len = pick(2) == 0 ? pick(out.size() + 16) : rng();
      std::memcpy(out.data(), &len, sizeof(len));
      break;
    }
    case 3: {
      static const char* kTokens[] = {"-1", "1e400", "18446744073709551616", "[", "]", "{", "}",
                                      "\"", ",", ":", "null", "999999999999"};
      const std::string token = kTokens[pick(std::size(kTokens))];
      const uint64_t at = 8 + pick(header_len);
      out.replace(at, std::min<uint64_t>(token.size(), out.size() - at), token);
      break;
    }
    case 4:
    case 5: {
      std::vector<uint64_t> digits;
      for (uint64_t i = 8; i < 8 + header_len; ++i) {
        if (out[i] >= '0' && out[i] <= '9') digits.push_back(i);
      }
      const uint64_t changes = 1 + pick(2);
      for (uint64_t i = 0; i < changes; ++i) {
        out[digits[pick(digits.size())]] = static_cast<char>('0' + pick(10));
      }
      break;
    }
  }
  return out;
}

// Touches every byte Open promised is in bounds, and reads every tensor.
void CheckOpenedFileIsInBounds(const SafetensorsFile& f, uint64_t file_size) {
  uint64_t checksum = 0;
  for (const std::string& name : f.TensorNames()) {
    const TensorInfo* t = f.Find(name);
    ASSERT_NE(t, nullptr);
    ASSERT_LE(t->data_begin, t->data_end);
    ASSERT_LE(t->data_end, f.data_size());
    ASSERT_LE(f.data_size(), file_size - 8);
    const uint8_t* p = f.Data(*t);
    for (uint64_t i = 0; i < t->data_end - t->data_begin; ++i) checksum += p[i];
    auto as_float = ReadFloat32(f, name);
    auto as_int = ReadInt64(f, name);
    EXPECT_NE(as_float.ok(), as_int.ok()) << name;  // exactly one category fits
  }
  (void)checksum;
}

TEST_F(SafetensorsTest, RandomCorruptionNeverCrashes) {
  const std::string valid = BuildFile(
      {{"model.a", "F32", {2, 3}, Bytes<float>({1, 2, 3, 4, 5, 6})},
       {"model.b", "BF16", {4}, Bytes<uint16_t>({0x3F80, 0x4000, 0x4040, 0x4080})},
       {"model.c", "F16", {2}, Bytes<uint16_t>({0x3C00, 0x0001})},
       {"model.d", "I64", {2}, Bytes<int64_t>({7, 8})},
       {"model.e", "U8", {3}, Bytes<uint8_t>({1, 2, 3})}},
      R"({"format":"pt"})");
  const uint64_t header_len = valid.size() - 8 - (24 + 8 + 4 + 16 + 3);  // minus prefix, data
  std::mt19937_64 rng(20240611);
  int opened = 0;
  for (int iter = 0; iter < 500; ++iter) {
    const std::string bytes = Corrupt(valid, header_len, rng);
    const std::string path = Write(bytes, absl::StrCat("fuzz", iter, ".safetensors"));
    auto file = SafetensorsFile::Open(path);
    if (file.ok()) {
      ++opened;
      CheckOpenedFileIsInBounds(**file, bytes.size());
    } else {
      EXPECT_THAT(std::string(file.status().message()), HasSubstr(path)) << "iteration " << iter;
    }
  }
  // Both outcomes must occur, or the corruption is not exercising anything.
  EXPECT_GT(opened, 0);
  EXPECT_LT(opened, 500);
}

}  // namespace
}  // namespace tessera
