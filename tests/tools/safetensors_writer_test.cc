// The streaming writer against the project's own hostile-input reader: what
// one writes, the other must accept, byte for byte, with every tensor 8-byte
// aligned, whatever the sizes of the appended pieces.
#include "tools/safetensors_writer.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "gtest/gtest.h"
#include "model/safetensors.h"

namespace tessera {
namespace {

std::string TempPath(const std::string& name) {
  return testing::TempDir() + "/safetensors_writer_test_" + std::to_string(::getpid()) + "_" + name;
}

// a: F32 (3), b: BF16 (5) = 10 bytes, e: U8 (0), d: I32 (2, 2): awkward sizes and an empty tensor.
std::vector<SafetensorsEntry> AwkwardEntries() {
  return {{"a", DType::kF32, {3}}, {"b", DType::kBF16, {5}}, {"e", DType::kU8, {0}}, {"d", DType::kI32, {2, 2}}};
}

TEST(SafetensorsWriterTest, RoundTripsThroughTheReaderInPiecesSpanningTensors) {
  const std::string path = TempPath("round_trip.safetensors");
  const std::vector<SafetensorsEntry> entries = AwkwardEntries();
  auto writer = SafetensorsWriter::Create(path, entries, {{"format", "pt"}});
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::vector<uint8_t> bytes(12 + 10 + 0 + 16);
  std::iota(bytes.begin(), bytes.end(), uint8_t{1});
  for (size_t i = 0; i < bytes.size(); i += 7) {
    const size_t n = std::min<size_t>(7, bytes.size() - i);
    ASSERT_TRUE((*writer)->Append(absl::MakeConstSpan(bytes).subspan(i, n)).ok());
  }
  ASSERT_TRUE((*writer)->Finish().ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  std::ifstream in(path, std::ios::binary);
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), sizeof(header_len));
  EXPECT_EQ((8 + header_len) % 8, 0u) << "data section must start 8-byte aligned";

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  size_t consumed = 0;
  for (const SafetensorsEntry& e : entries) {
    const TensorInfo* t = (*file)->Find(e.name);
    ASSERT_NE(t, nullptr) << e.name;
    EXPECT_EQ(t->dtype, e.dtype);
    EXPECT_EQ(t->shape, e.shape);
    EXPECT_EQ(t->data_begin % 8, 0u) << e.name;
    ASSERT_EQ(t->data_end - t->data_begin, static_cast<uint64_t>(e.bytes()));
    EXPECT_EQ(std::memcmp((*file)->Data(*t), bytes.data() + consumed, e.bytes()), 0) << e.name;
    consumed += e.bytes();
  }
  std::filesystem::remove(path);
}

TEST(SafetensorsWriterTest, RefusesBytesPastTheLastTensor) {
  const std::string path = TempPath("too_many.safetensors");
  auto writer = SafetensorsWriter::Create(path, {{"a", DType::kF32, {1}}});
  ASSERT_TRUE(writer.ok());
  const std::vector<uint8_t> bytes(5, 0);
  EXPECT_EQ((*writer)->Append(bytes).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SafetensorsWriterTest, UnfinishedFileNeverAppearsUnderItsName) {
  const std::string path = TempPath("short.safetensors");
  {
    auto writer = SafetensorsWriter::Create(path, AwkwardEntries());
    ASSERT_TRUE(writer.ok());
    const std::vector<uint8_t> bytes(13, 0);
    ASSERT_TRUE((*writer)->Append(bytes).ok());
    EXPECT_EQ((*writer)->Finish().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(SafetensorsWriterTest, RejectsRepeatedAndReservedNames) {
  EXPECT_EQ(SafetensorsWriter::Create(TempPath("dup"), {{"a", DType::kF32, {1}}, {"a", DType::kF32, {1}}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SafetensorsWriter::Create(TempPath("meta"), {{"__metadata__", DType::kF32, {1}}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera
