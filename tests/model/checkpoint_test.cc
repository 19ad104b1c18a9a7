// Checkpoint: single-file and sharded model directories, hand-built here, and
// the real tiny Hugging Face fixtures.
//
// Why: model code relies on three promises — a checkpoint that opens has every
// tensor its index lists, LoadFloat32 rejects a shape the config does not
// imply with a message naming both, and a HostTensor (zero-copy view or owned
// conversion) stays correct however it is moved. Each is pinned here.
#include "model/checkpoint.h"

#include <stdlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
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
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// --- Building files by hand ---

template <typename T>
std::string Bytes(std::initializer_list<T> values) {
  std::string out;
  for (T v : values) out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  return out;
}

struct RawTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// A valid safetensors file; the header is space-padded to 8k + `misalign`
// bytes, so the data section starts at file offset 8 + 8k + misalign.
std::string BuildFile(const std::vector<RawTensor>& tensors, size_t misalign = 0) {
  std::vector<std::string> entries;
  std::string data;
  for (const RawTensor& t : tensors) {
    entries.push_back(absl::StrCat("\"", t.name, "\":{\"dtype\":\"", t.dtype, "\",\"shape\":[",
                                   absl::StrJoin(t.shape, ","), "],\"data_offsets\":[",
                                   data.size(), ",", data.size() + t.bytes.size(), "]}"));
    data += t.bytes;
  }
  std::string header = absl::StrCat("{", absl::StrJoin(entries, ","), "}");
  header.resize((header.size() + 7) / 8 * 8 + misalign, ' ');
  return Bytes<uint64_t>({header.size()}) + header + data;
}

std::string Index(const std::vector<std::pair<std::string, std::string>>& weight_map) {
  std::vector<std::string> entries;
  for (const auto& [tensor, shard] : weight_map) {
    entries.push_back(absl::StrCat("\"", tensor, "\":\"", shard, "\""));
  }
  return absl::StrCat(R"({"metadata":{"total_size":0},"weight_map":{)",
                      absl::StrJoin(entries, ","), "}}");
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "tessera_checkpoint_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string Write(const std::string& name, const std::string& contents) {
    const std::string path = (fs::path(dir_) / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    EXPECT_TRUE(out.good());
    return path;
  }

  // Two shards: "a.*" tensors in shard 1, "b.*" in shard 2.
  void WriteTwoShards() {
    Write("model-00001-of-00002.safetensors",
          BuildFile({{"a.w", "F32", {2, 2}, Bytes<float>({1, 2, 3, 4})},
                     {"a.bias", "BF16", {2}, Bytes<uint16_t>({0x3F80, 0x4000})}}));
    Write("model-00002-of-00002.safetensors",
          BuildFile({{"b.w", "F16", {3}, Bytes<uint16_t>({0x3C00, 0x4000, 0x4200})}}));
  }

  std::string dir_;
};

void ExpectError(const absl::Status& status, absl::StatusCode code,
                 const std::vector<std::string>& needles) {
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), code) << status;
  for (const std::string& n : needles) {
    EXPECT_THAT(std::string(status.message()), HasSubstr(n)) << status;
  }
}

std::vector<float> Values(const HostTensor& t) { return {t.data, t.data + t.numel()}; }

// --- Single file ---

TEST_F(CheckpointTest, SingleFileAlignedF32IsZeroCopy) {
  Write("model.safetensors", BuildFile({{"w", "F32", {2, 3}, Bytes<float>({1, 2, 3, 4, 5, 6})},
                                        {"n", "F32", {3}, Bytes<float>({7, 8, 9})}}));
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_THAT((*ckpt)->TensorNames(), ElementsAre("n", "w"));
  EXPECT_TRUE((*ckpt)->Contains("w"));
  EXPECT_FALSE((*ckpt)->Contains("x"));

  auto w = (*ckpt)->LoadFloat32("w", {2, 3});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->is_view());
  EXPECT_TRUE(w->owned.empty());
  EXPECT_THAT(w->shape, ElementsAre(2, 3));
  EXPECT_EQ(w->numel(), 6);
  EXPECT_THAT(Values(*w), ElementsAre(1, 2, 3, 4, 5, 6));

  auto n = (*ckpt)->LoadFloat32("n");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_TRUE(n->is_view());
  EXPECT_THAT(Values(*n), ElementsAre(7, 8, 9));
}

TEST_F(CheckpointTest, UnalignedF32IsCopied) {
  for (size_t misalign : {1, 2, 3}) {
    Write("model.safetensors",
          BuildFile({{"w", "F32", {3}, Bytes<float>({1.5f, -2.5f, 3.25f})}}, misalign));
    auto ckpt = Checkpoint::Open(dir_);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    auto w = (*ckpt)->LoadFloat32("w", {3});
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_FALSE(w->is_view()) << misalign;
    EXPECT_EQ(w->data, w->owned.data());
    EXPECT_THAT(Values(*w), ElementsAre(1.5f, -2.5f, 3.25f));
  }
}

TEST_F(CheckpointTest, HalfPrecisionIsConverted) {
  Write("model.safetensors",
        BuildFile({{"h", "F16", {2}, Bytes<uint16_t>({0x3C00, 0x0001})},
                   {"b", "BF16", {2}, Bytes<uint16_t>({0x3F80, 0xC040})}}));
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto h = (*ckpt)->LoadFloat32("h", {2});
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_FALSE(h->is_view());
  EXPECT_THAT(Values(*h), ElementsAre(1.f, std::ldexp(1.f, -24)));
  auto b = (*ckpt)->LoadFloat32("b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(Values(*b), ElementsAre(1.f, -3.f));
}

TEST_F(CheckpointTest, IntegerTensorIsInvalidArgument) {
  const std::string path =
      Write("model.safetensors", BuildFile({{"ids", "I64", {1}, Bytes<int64_t>({3})}}));
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ExpectError((*ckpt)->LoadFloat32("ids").status(), absl::StatusCode::kInvalidArgument,
              {path, "tensor 'ids'"});
}

TEST_F(CheckpointTest, HostTensorSurvivesMovesAndCopies) {
  Write("model.safetensors", BuildFile({{"view", "F32", {4}, Bytes<float>({1, 2, 3, 4})},
                                        {"conv", "BF16", {2}, Bytes<uint16_t>({0x4040, 0x4080})}}));
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  for (const char* name : {"view", "conv"}) {
    auto loaded = (*ckpt)->LoadFloat32(name);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    const std::vector<float> expected = Values(*loaded);

    HostTensor moved(std::move(*loaded));  // move construction
    EXPECT_THAT(Values(moved), ElementsAreArray(expected)) << name;
    HostTensor assigned;
    assigned = std::move(moved);  // move assignment
    EXPECT_THAT(Values(assigned), ElementsAreArray(expected)) << name;
    HostTensor copied(assigned);  // copy construction gets its own buffer when owned
    EXPECT_THAT(Values(copied), ElementsAreArray(expected)) << name;
    if (!assigned.is_view()) {
      EXPECT_NE(copied.data, assigned.data) << name;
    }
    HostTensor copy_assigned;
    copy_assigned = copied;
    EXPECT_THAT(Values(copy_assigned), ElementsAreArray(expected)) << name;

    std::vector<HostTensor> many;  // growth moves elements to new storage
    for (int i = 0; i < 33; ++i) many.push_back(copy_assigned);
    for (const HostTensor& t : many) EXPECT_THAT(Values(t), ElementsAreArray(expected)) << name;

    copied = HostTensor();  // the original is unaffected by its copy's reset
    EXPECT_THAT(Values(copy_assigned), ElementsAreArray(expected)) << name;
  }
}

TEST_F(CheckpointTest, ShapeMismatchNamesTensorAndBothShapes) {
  const std::string path =
      Write("model.safetensors", BuildFile({{"w", "F32", {2, 3}, std::string(24, '\0')}}));
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ExpectError((*ckpt)->LoadFloat32("w", {3, 2}).status(), absl::StatusCode::kInvalidArgument,
              {absl::StrCat("tensor 'w' in ", path, " has shape [2, 3], the config implies [3, 2]")});
  ExpectError((*ckpt)->LoadFloat32("w", {6}).status(), absl::StatusCode::kInvalidArgument,
              {"tensor 'w'", "[2, 3]", "[6]"});
}

TEST_F(CheckpointTest, MissingTensorIsNotFound) {
  Write("model.safetensors", BuildFile({{"w", "F32", {1}, std::string(4, '\0')}}));
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ExpectError((*ckpt)->LoadFloat32("nope", {1}).status(), absl::StatusCode::kNotFound,
              {absl::StrCat("tensor 'nope' not found in ", dir_)});
  ExpectError((*ckpt)->LoadFloat32("nope").status(), absl::StatusCode::kNotFound,
              {"tensor 'nope'", dir_});
}

TEST_F(CheckpointTest, EmptyOrMissingDirectoryIsNotFound) {
  ExpectError(Checkpoint::Open(dir_).status(), absl::StatusCode::kNotFound,
              {dir_, "model.safetensors"});
  const std::string absent = (fs::path(dir_) / "absent").string();
  ExpectError(Checkpoint::Open(absent).status(), absl::StatusCode::kNotFound, {absent});
}

TEST_F(CheckpointTest, CorruptSingleFileNamesIt) {
  const std::string path = Write("model.safetensors", Bytes<uint64_t>({4}) + "{]  ");
  ExpectError(Checkpoint::Open(dir_).status(), absl::StatusCode::kInvalidArgument, {path});
}

TEST_F(CheckpointTest, SingleFileTakesPrecedenceOverIndex) {
  Write("model.safetensors", BuildFile({{"w", "F32", {1}, Bytes<float>({5})}}));
  Write("model.safetensors.index.json", "not json");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_THAT((*ckpt)->TensorNames(), ElementsAre("w"));
}

// --- Sharded ---

TEST_F(CheckpointTest, ShardedLoadsTensorsFromBothShards) {
  WriteTwoShards();
  Write("model.safetensors.index.json", Index({{"a.w", "model-00001-of-00002.safetensors"},
                                               {"a.bias", "model-00001-of-00002.safetensors"},
                                               {"b.w", "model-00002-of-00002.safetensors"}}));
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_THAT((*ckpt)->TensorNames(), ElementsAre("a.bias", "a.w", "b.w"));
  auto aw = (*ckpt)->LoadFloat32("a.w", {2, 2});
  ASSERT_TRUE(aw.ok()) << aw.status();
  EXPECT_THAT(Values(*aw), ElementsAre(1, 2, 3, 4));
  auto abias = (*ckpt)->LoadFloat32("a.bias", {2});
  ASSERT_TRUE(abias.ok()) << abias.status();
  EXPECT_THAT(Values(*abias), ElementsAre(1, 2));
  auto bw = (*ckpt)->LoadFloat32("b.w", {3});
  ASSERT_TRUE(bw.ok()) << bw.status();
  EXPECT_THAT(Values(*bw), ElementsAre(1, 2, 3));
}

TEST_F(CheckpointTest, ShardedIndexIsTheAuthorityOnNames) {
  WriteTwoShards();  // shard 1 also holds a.bias, which this index does not list
  Write("model.safetensors.index.json", Index({{"a.w", "model-00001-of-00002.safetensors"},
                                               {"b.w", "model-00002-of-00002.safetensors"}}));
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_THAT((*ckpt)->TensorNames(), ElementsAre("a.w", "b.w"));
  EXPECT_FALSE((*ckpt)->Contains("a.bias"));
}

TEST_F(CheckpointTest, IndexReferencingMissingShard) {
  WriteTwoShards();
  const std::string index = Write(
      "model.safetensors.index.json",
      Index({{"a.w", "model-00001-of-00002.safetensors"}, {"c.w", "model-00003.safetensors"}}));
  ExpectError(Checkpoint::Open(dir_).status(), absl::StatusCode::kNotFound,
              {index, "tensor 'c.w'", (fs::path(dir_) / "model-00003.safetensors").string()});
}

TEST_F(CheckpointTest, IndexMappingTensorToShardLackingIt) {
  WriteTwoShards();
  const std::string index =
      Write("model.safetensors.index.json", Index({{"a.w", "model-00001-of-00002.safetensors"},
                                                   {"b.w", "model-00001-of-00002.safetensors"}}));
  ExpectError(
      Checkpoint::Open(dir_).status(), absl::StatusCode::kInvalidArgument,
      {index, "tensor 'b.w'", (fs::path(dir_) / "model-00001-of-00002.safetensors").string()});
}

TEST_F(CheckpointTest, CorruptShardNamesShardAndIndex) {
  WriteTwoShards();
  const std::string bad = Write("model-00002-of-00002.safetensors", "short");
  const std::string index =
      Write("model.safetensors.index.json", Index({{"a.w", "model-00001-of-00002.safetensors"},
                                                   {"b.w", "model-00002-of-00002.safetensors"}}));
  ExpectError(Checkpoint::Open(dir_).status(), absl::StatusCode::kDataLoss, {bad, index});
}

TEST_F(CheckpointTest, MalformedIndex) {
  WriteTwoShards();
  struct Case {
    std::string text;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"{\"weight_map\": {", "not valid JSON"},
      {"[]", "not a JSON object"},
      {R"({"metadata":{}})", "no 'weight_map'"},
      {R"({"weight_map":[]})", "no 'weight_map'"},
      {R"({"weight_map":{}})", "empty"},
      {R"({"weight_map":{"a.w":3}})", "tensor 'a.w'"},
      {R"({"weight_map":{"a.w":"../model-00001-of-00002.safetensors"}})", "tensor 'a.w'"},
      {R"({"weight_map":{"a.w":"/etc/passwd"}})", "tensor 'a.w'"},
      {R"({"weight_map":{"a.w":".."}})", "tensor 'a.w'"},
      {R"({"weight_map":{"a.w":""}})", "tensor 'a.w'"},
  };
  for (const Case& c : cases) {
    const std::string index = Write("model.safetensors.index.json", c.text);
    ExpectError(Checkpoint::Open(dir_).status(), absl::StatusCode::kInvalidArgument,
                {index, c.needle});
  }
}

// --- Real fixtures ---

std::string FixtureDir(const char* model) {
  return absl::StrCat(TESSERA_TEST_DATA_DIR, "/hf-tiny/", model);
}

TEST(CheckpointFixtureTest, BambaTinyLoads) {
  auto ckpt = Checkpoint::Open(FixtureDir("bamba-tiny"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ASSERT_TRUE((*ckpt)->Contains("model.layers.0.mamba.A_log"));
  auto a_log = (*ckpt)->LoadFloat32("model.layers.0.mamba.A_log", {8});  // (heads)
  ASSERT_TRUE(a_log.ok()) << a_log.status();
  EXPECT_THAT(a_log->shape, ElementsAre(8));
  EXPECT_TRUE(a_log->is_view());  // F32, and the fixture's data section is aligned
  auto embed = (*ckpt)->LoadFloat32("model.embed_tokens.weight", {512, 64});  // (vocab, hidden)
  ASSERT_TRUE(embed.ok()) << embed.status();
  ExpectError((*ckpt)->LoadFloat32("model.layers.0.mamba.A_log", {16}).status(),
              absl::StatusCode::kInvalidArgument,
              {"model.layers.0.mamba.A_log", "[8]", "[16]", "model.safetensors"});
}

TEST(CheckpointFixtureTest, EveryFixtureTensorLoads) {
  for (const char* model : {"bamba-tiny", "mamba2-tiny", "nemotronh-tiny"}) {
    auto ckpt = Checkpoint::Open(FixtureDir(model));
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    ASSERT_FALSE((*ckpt)->TensorNames().empty()) << model;
    for (const std::string& name : (*ckpt)->TensorNames()) {
      auto t = (*ckpt)->LoadFloat32(name);
      ASSERT_TRUE(t.ok()) << t.status();
      EXPECT_NE(t->data, nullptr) << name;
      EXPECT_GT(t->numel(), 0) << name;
    }
  }
}

}  // namespace
}  // namespace tessera
