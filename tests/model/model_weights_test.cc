// Loading weights against a config: a checkpoint that disagrees with its
// config (shape, missing tensor, unknown family) fails with a named error, and
// `tessera eval` turns such errors into a message and a non-zero exit.
#include "model/model_weights.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A copy of a fixture directory whose config.json has `from` replaced by `to`.
fs::path FixtureWithConfigEdit(const std::string& fixture, const std::string& from, const std::string& to) {
  const fs::path src = fs::path(TESSERA_TEST_DATA_DIR) / "hf-tiny" / fixture;
  const fs::path dst = fs::temp_directory_path() /
                       ("tessera_weights_test_" + std::to_string(::getpid()) + "_" + fixture + "_" +
                        std::to_string(std::hash<std::string>{}(from + to)));
  fs::remove_all(dst);
  fs::create_directories(dst);
  fs::copy_file(src / "model.safetensors", dst / "model.safetensors");
  std::string config = ReadFile(src / "config.json");
  const size_t at = config.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) config.replace(at, from.size(), to);
  std::ofstream(dst / "config.json") << config;
  return dst;
}

TEST(ModelWeightsTest, FixturesLoad) {
  for (const char* name : {"mamba2-tiny", "bamba-tiny", "nemotronh-tiny", "nemotronh-moe-tiny", "granitemoe-tiny"}) {
    absl::StatusOr<std::unique_ptr<ModelWeights>> w =
        LoadModelWeights(std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/" + name);
    ASSERT_TRUE(w.ok()) << name << ": " << w.status();
    EXPECT_EQ((*w)->blocks.size(), (*w)->config.blocks.size());
    const auto& mamba = std::get<MambaWeights>((*w)->blocks[0].op);
    EXPECT_LT(mamba.A[0], 0.0f);
  }
}

TEST(ModelWeightsTest, ShapeDisagreeingWithConfigNamesTensor) {
  const fs::path dir = FixtureWithConfigEdit("bamba-tiny", "\"intermediate_size\": 128", "\"intermediate_size\": 96");
  absl::StatusOr<std::unique_ptr<ModelWeights>> w = LoadModelWeights(dir.string());
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument) << w.status();
  EXPECT_NE(w.status().message().find("feed_forward"), absl::string_view::npos) << w.status();
  fs::remove_all(dir);
}

TEST(ModelWeightsTest, MissingTensorIsNotFound) {
  // Layer 0 declared attention, but the checkpoint holds a Mamba mixer there.
  const fs::path dir = FixtureWithConfigEdit("bamba-tiny", "\"attn_layer_indices\": [\n    2,", "\"attn_layer_indices\": [\n    0,");
  absl::StatusOr<std::unique_ptr<ModelWeights>> w = LoadModelWeights(dir.string());
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kNotFound) << w.status();
  EXPECT_NE(w.status().message().find("model.layers.0.self_attn.q_proj.weight"), absl::string_view::npos)
      << w.status();
  fs::remove_all(dir);
}

TEST(ModelWeightsTest, UnknownModelTypeIsRejected) {
  const fs::path dir = FixtureWithConfigEdit("mamba2-tiny", "\"model_type\": \"mamba2\"", "\"model_type\": \"rwkv\"");
  absl::StatusOr<std::unique_ptr<ModelWeights>> w = LoadModelWeights(dir.string());
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("model_type"), absl::string_view::npos) << w.status();
  fs::remove_all(dir);
}

// The CLI reports load errors on stderr with a non-zero exit, never a crash.
TEST(EvalCommandTest, BadModelExitsNonZeroWithMessage) {
  const fs::path dir = FixtureWithConfigEdit("mamba2-tiny", "\"model_type\": \"mamba2\"", "\"model_type\": \"rwkv\"");
  const fs::path err = dir / "stderr.txt";
  const std::string cmd = std::string(TESSERA_BINARY) + " eval --model " + dir.string() + " --reference " +
                          TESSERA_TEST_DATA_DIR + "/hf-tiny/mamba2-tiny/reference.safetensors 2>" + err.string();
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  EXPECT_NE(ReadFile(err).find("model_type"), std::string::npos) << ReadFile(err);
  fs::remove_all(dir);
}

TEST(EvalCommandTest, FixturePassesWithExitZero) {
  const std::string dir = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/nemotronh-tiny";
  const std::string cmd = std::string(TESSERA_BINARY) + " eval --model " + dir + " >/dev/null";
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 0);
}

}  // namespace
}  // namespace tessera
