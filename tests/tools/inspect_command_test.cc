// `tessera inspect` through the real binary, as a user runs it on a download:
// the configs the model owners publish (tests/data/hub-configs, see its
// SOURCES.md) are read with the values the owners intend (EXPECTED.md; only
// values seen in the file or stated by the owners are asserted), and a
// malformed directory exits 2 naming the file and the key or tensor.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"
#include "tools/safetensors_writer.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

struct CommandRun {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

CommandRun Inspect(const std::string& dir, const std::string& extra = "") {
  const std::string command = std::string(TESSERA_BINARY) + " inspect '" + dir + "' " + extra + " 2>&1";
  CommandRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buffer;
  size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) run.out.append(buffer.data(), n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

Json InspectJson(const std::string& dir, int expected_exit) {
  const CommandRun run = Inspect(dir, "--json");
  EXPECT_EQ(run.exit_code, expected_exit) << run.out;
  Json j = Json::parse(run.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << run.out;
  return j;
}

std::string Hub(const std::string& name) { return std::string(TESSERA_TEST_DATA_DIR) + "/hub-configs/" + name; }
std::string Fixture(const std::string& name) { return std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/" + name; }

void ExpectAttention(const Json& j, int heads, int kv_heads, int head_dim, int rotary_dim) {
  ASSERT_TRUE(j.contains("attention")) << j.dump();
  EXPECT_EQ(j["attention"]["num_heads"], heads);
  EXPECT_EQ(j["attention"]["num_kv_heads"], kv_heads);
  EXPECT_EQ(j["attention"]["head_dim"], head_dim);
  EXPECT_EQ(j["attention"]["rotary_dim"], rotary_dim);
}

void ExpectMamba(const Json& j, int heads, int head_dim, int state, int groups, int chunk) {
  ASSERT_TRUE(j.contains("mamba")) << j.dump();
  EXPECT_EQ(j["mamba"]["num_heads"], heads);
  EXPECT_EQ(j["mamba"]["head_dim"], head_dim);
  EXPECT_EQ(j["mamba"]["state_size"], state);
  EXPECT_EQ(j["mamba"]["groups"], groups);
  EXPECT_EQ(j["mamba"]["chunk_size"], chunk);
}

TEST(InspectHubConfigsTest, NemotronHBaseModels) {
  const std::string pattern_8b = "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-";
  for (const char* name : {"nvidia--Nemotron-H-4B-Base-8K", "nvidia--Nemotron-H-8B-Base-8K"}) {
    SCOPED_TRACE(name);
    const Json j = InspectJson(Hub(name), 0);
    EXPECT_EQ(j["model_type"], "nemotron_h");
    EXPECT_EQ(j["layers"], pattern_8b);
    ExpectAttention(j, 32, 8, 128, 0);
    EXPECT_EQ(j["context"]["max_position_embeddings"], 8192);
    EXPECT_EQ(j["weights"]["present"], false);
  }
  EXPECT_EQ(InspectJson(Hub("nvidia--Nemotron-H-4B-Base-8K"), 0)["hidden_size"], 3072);
  ExpectMamba(InspectJson(Hub("nvidia--Nemotron-H-4B-Base-8K"), 0), 112, 64, 128, 8, 128);
  ExpectMamba(InspectJson(Hub("nvidia--Nemotron-H-8B-Base-8K"), 0), 128, 64, 128, 8, 128);

  const Json j47 = InspectJson(Hub("nvidia--Nemotron-H-47B-Base-8K"), 0);
  EXPECT_EQ(j47["num_layers"], 98);
  EXPECT_EQ(j47["layers"],
            "M-M-M-M-M-M-M-M-M*-M-M-M-M-M-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-M-M---MM---M-M*-M-M-M-M-M-");
  ExpectAttention(j47, 64, 8, 128, 0);
  EXPECT_EQ(j47["mamba"]["num_heads"], 256);
  EXPECT_EQ(j47["mamba"]["state_size"], 256);

  const Json j56 = InspectJson(Hub("nvidia--Nemotron-H-56B-Base-8K"), 0);
  EXPECT_EQ(j56["num_layers"], 118);
  ExpectAttention(j56, 64, 8, 128, 0);
  ExpectMamba(j56, 256, 64, 256, 8, 128);
  EXPECT_EQ(j56["mlp"]["intermediate_size"], 32768);
}

TEST(InspectHubConfigsTest, NemotronNanoV2AndTheMoeNano) {
  const Json nano = InspectJson(Hub("nvidia--NVIDIA-Nemotron-Nano-9B-v2"), 0);
  EXPECT_EQ(nano["layers"], "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-");
  ExpectAttention(nano, 40, 8, 128, 0);
  EXPECT_EQ(nano["mamba"]["num_heads"], 128);
  EXPECT_EQ(nano["mamba"]["head_dim"], 80);

  const Json moe = InspectJson(Hub("nvidia--NVIDIA-Nemotron-3-Nano-30B-A3B"), 0);  // MoE: served
  EXPECT_EQ(moe["layers"], "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME");
  EXPECT_EQ(moe["servable"], true);
  ASSERT_TRUE(moe.contains("moe"));
  EXPECT_EQ(moe["moe"]["experts"], 128);
  EXPECT_EQ(moe["moe"]["top_k"], 6);
  EXPECT_EQ(moe["moe"]["shared_experts"], 1);
  EXPECT_EQ(moe["moe"]["routing"], "sigmoid_biased");
  EXPECT_FLOAT_EQ(moe["moe"]["routed_scaling_factor"].get<float>(), 2.5f);
  ExpectAttention(moe, 32, 2, 128, 0);
  ExpectMamba(moe, 64, 64, 128, 8, 128);
  EXPECT_TRUE(moe["reasons"].empty()) << moe["reasons"];
}

TEST(InspectHubConfigsTest, Bamba9BRotatesHalfOfEachHead) {
  const Json j = InspectJson(Hub("ibm-ai-platform--Bamba-9B"), 0);
  EXPECT_EQ(j["model_type"], "bamba");
  EXPECT_EQ(j["layers"], "MMMMMMMMM*MMMMMMMM*MMMMMMMM*MMMM");
  ExpectAttention(j, 32, 8, 128, 64);
  ExpectMamba(j, 128, 64, 128, 1, 256);
  EXPECT_EQ(j["vocab_size"], 128256);
}

TEST(InspectHubConfigsTest, GraniteFourHybridsAreServed) {
  const Json tiny = InspectJson(Hub("ibm-granite--granite-4.0-h-tiny"), 0);
  EXPECT_EQ(tiny["model_type"], "granitemoehybrid");
  EXPECT_EQ(tiny["num_layers"], 40);
  ExpectAttention(tiny, 12, 4, 128, 0);
  EXPECT_EQ(tiny["moe"]["experts"], 64);
  EXPECT_EQ(tiny["moe"]["top_k"], 6);
  EXPECT_EQ(tiny["moe"]["routing"], "softmax_topk");
  EXPECT_EQ(tiny["multipliers"]["embedding"], 12.0);

  const Json small = InspectJson(Hub("ibm-granite--granite-4.0-h-small"), 0);
  ExpectAttention(small, 32, 8, 128, 0);
  EXPECT_EQ(small["moe"]["experts"], 72);
  EXPECT_EQ(small["moe"]["top_k"], 10);

  const Json micro = InspectJson(Hub("ibm-granite--granite-4.0-h-micro"), 0);
  ExpectAttention(micro, 32, 8, 64, 0);
  EXPECT_EQ(micro["moe"]["experts"], 0);  // dense: the shared MLP alone
  EXPECT_EQ(micro["tie_word_embeddings"], true);
}

TEST(InspectHubConfigsTest, PureMamba2InBothFormats) {
  const Json codestral = InspectJson(Hub("mistralai--Mamba-Codestral-7B-v0.1"), 0);
  EXPECT_EQ(codestral["num_layers"], 64);
  ExpectMamba(codestral, 128, 64, 128, 8, 256);
  EXPECT_EQ(codestral["mamba"]["norm_group_size"], 8192);  // transformers: over d_inner, gate first

  const Json small = InspectJson(Hub("state-spaces--mamba2-130m"), 0);
  EXPECT_EQ(small["config_format"], "mamba_ssm");
  EXPECT_EQ(small["vocab_size"], 50288);  // 50277 padded to a multiple of 16
  EXPECT_EQ(small["tie_word_embeddings"], true);
  ExpectMamba(small, 24, 64, 128, 1, 256);
  const Json large = InspectJson(Hub("state-spaces--mamba2-2.7b"), 0);
  EXPECT_EQ(large["num_layers"], 64);
  EXPECT_EQ(large["mamba"]["num_heads"], 80);
}

TEST(InspectFixturesTest, EveryFixtureIsServableWithItsWeights) {
  for (const char* name : {"mamba2-tiny", "bamba-tiny", "nemotronh-tiny"}) {
    SCOPED_TRACE(name);
    const Json j = InspectJson(Fixture(name), 0);
    EXPECT_EQ(j["weights"]["present"], true);
    EXPECT_TRUE(j["weights"]["missing"].empty());
    EXPECT_TRUE(j["weights"]["unexpected"].empty());
    EXPECT_GT(j["weights"]["parameters"].get<int64_t>(), 0);
    EXPECT_TRUE(j["unread_config_keys"].empty()) << j["unread_config_keys"];
  }
  const CommandRun text = Inspect(Fixture("bamba-tiny"));
  EXPECT_EQ(text.exit_code, 0) << text.out;
  EXPECT_NE(text.out.find("RoPE on 8 dims"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("verdict:     Tessera can serve this model"), std::string::npos) << text.out;
}

// A scratch model directory: `config` and (optionally) mamba2-tiny's tensors
// through `edit`, which may drop, rename or retype them.
class MalformedDirTest : public ::testing::Test {
 protected:
  std::string Dir(const std::string& name) {
    const std::string dir = ::testing::TempDir() + "/inspect-" + name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
  }
  static std::string FixtureConfig() {
    std::ifstream in(Fixture("mamba2-tiny") + "/config.json");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Copies mamba2-tiny's weights with `entry` applied to each header entry.
  static void WriteWeights(const std::string& dir, const std::function<bool(SafetensorsEntry&)>& entry) {
    auto in = SafetensorsFile::Open(Fixture("mamba2-tiny") + "/model.safetensors");
    ASSERT_TRUE(in.ok()) << in.status();
    std::vector<SafetensorsEntry> entries;
    std::vector<const TensorInfo*> sources;
    for (const std::string& name : (*in)->TensorNames()) {
      const TensorInfo* info = (*in)->Find(name);
      SafetensorsEntry e{name, info->dtype, info->shape};
      if (!entry(e)) continue;
      entries.push_back(e);
      sources.push_back(info);
    }
    auto out = SafetensorsWriter::Create(dir + "/model.safetensors", entries);
    ASSERT_TRUE(out.ok()) << out.status();
    for (size_t i = 0; i < entries.size(); ++i) {
      std::vector<uint8_t> bytes(entries[i].bytes(), 0);
      const size_t have = sources[i]->data_end - sources[i]->data_begin;
      std::copy_n((*in)->Data(*sources[i]), std::min<size_t>(have, bytes.size()), bytes.begin());
      ASSERT_TRUE((*out)->Append(bytes).ok());
    }
    ASSERT_TRUE((*out)->Finish().ok());
  }
};

TEST_F(MalformedDirTest, TruncatedConfigNamesTheFileAndPosition) {
  const std::string dir = Dir("truncated");
  std::ofstream(dir + "/config.json") << FixtureConfig().substr(0, 200);
  const CommandRun run = Inspect(dir);
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("config.json: not valid JSON at line"), std::string::npos) << run.out;
}

TEST_F(MalformedDirTest, MissingDirectoryAndMissingConfig) {
  EXPECT_EQ(Inspect(::testing::TempDir() + "/no-such-dir").exit_code, 2);
  const CommandRun run = Inspect(Dir("empty"));
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("config.json"), std::string::npos) << run.out;
}

TEST_F(MalformedDirTest, AKeyTransformersWouldActOnIsRefusedByName) {
  const std::string dir = Dir("rms-norm-off");
  std::string config = FixtureConfig();
  config.replace(config.find("\"rms_norm\": true"), 16, "\"rms_norm\": false");
  std::ofstream(dir + "/config.json") << config;
  const CommandRun run = Inspect(dir);
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("'rms_norm'"), std::string::npos) << run.out;
}

TEST_F(MalformedDirTest, MissingTensorIsNamed) {
  const std::string dir = Dir("missing-tensor");
  std::ofstream(dir + "/config.json") << FixtureConfig();
  WriteWeights(dir, [](SafetensorsEntry& e) { return e.name != "backbone.layers.2.mixer.dt_bias"; });
  const CommandRun run = Inspect(dir);
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("missing:    backbone.layers.2.mixer.dt_bias"), std::string::npos) << run.out;
}

TEST_F(MalformedDirTest, WrongShapeIsNamedWithBothShapes) {
  const std::string dir = Dir("wrong-shape");
  std::ofstream(dir + "/config.json") << FixtureConfig();
  WriteWeights(dir, [](SafetensorsEntry& e) {
    if (e.name == "backbone.layers.1.mixer.D") e.shape = {7};
    return true;
  });
  const CommandRun run = Inspect(dir);
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("backbone.layers.1.mixer.D: expected [8], found [7]"), std::string::npos) << run.out;
}

TEST_F(MalformedDirTest, DtypeItCannotUseIsNamed) {
  const std::string dir = Dir("int8");
  std::ofstream(dir + "/config.json") << FixtureConfig();
  WriteWeights(dir, [](SafetensorsEntry& e) {
    if (e.name == "backbone.norm_f.weight") e.dtype = DType::kI8;
    return true;
  });
  const CommandRun run = Inspect(dir);
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("backbone.norm_f.weight: I8"), std::string::npos) << run.out;
}

TEST_F(MalformedDirTest, PytorchWeightsOnlyNameTheConversion) {
  const std::string dir = Dir("pytorch-only");
  std::ofstream(dir + "/config.json") << FixtureConfig();
  std::ofstream(dir + "/pytorch_model.bin") << "not read";
  const CommandRun run = Inspect(dir);
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("save_file"), std::string::npos) << run.out;
}

TEST_F(MalformedDirTest, GarbageSafetensorsHeaderIsReportedNotCrashed) {
  const std::string dir = Dir("garbage");
  std::ofstream(dir + "/config.json") << FixtureConfig();
  std::ofstream(dir + "/model.safetensors") << std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{\"a\":", 14);
  const CommandRun run = Inspect(dir);
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("model.safetensors"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace tessera
