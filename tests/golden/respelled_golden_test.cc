// The shared fixtures re-spelled the way the hub publishes configs compute
// exactly what the original spelling computes: the same reference report
// (transformers float32) to the last digit, every greedy token identical.
// Spellings: bare Infinity (transformers 4.x json.dumps), Mamba-Codestral's
// "norm_before_gate": true (transformers gates first whatever it says),
// Bamba-9B's "attn_rotary_emb" with rope_theta at the top level and no
// partial_rotary_factor, Nemotron-H's hybrid_override_pattern with hub
// aliases, and mamba_ssm's own config.json and tensor names.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "model/model_weights.h"
#include "model/safetensors.h"
#include "tools/engine_greedy_runner.h"
#include "tools/reference_eval.h"
#include "tools/safetensors_writer.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

constexpr double kTolerance = 1e-4;

std::string FixtureDir(const std::string& name) { return std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/" + name; }

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void Replace(std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "no '" << from << "' in the fixture's config";
  text.replace(at, from.size(), to);
}

// A model directory beside the test's temp dir: `config` as config.json, the
// fixture's weights and reference linked in.
std::string RespelledDir(const std::string& fixture, const std::string& name, const std::string& config,
                         bool link_weights = true) {
  const std::string dir = ::testing::TempDir() + "/respelled-" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << config;
  fs::create_symlink(FixtureDir(fixture) + "/reference.safetensors", dir + "/reference.safetensors");
  if (link_weights) fs::create_symlink(FixtureDir(fixture) + "/model.safetensors", dir + "/model.safetensors");
  return dir;
}

std::vector<LengthReport> Evaluate(const ModelWeights& weights, const std::string& reference) {
  absl::StatusOr<std::vector<LengthReport>> reports =
      EvaluateAgainstReference(reference, MakeCpuGreedyRunner(weights), kTolerance);
  EXPECT_TRUE(reports.ok()) << reports.status();
  return reports.ok() ? *reports : std::vector<LengthReport>{};
}

std::vector<LengthReport> Evaluate(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<ModelWeights>> weights = LoadModelWeights(dir);
  EXPECT_TRUE(weights.ok()) << weights.status();
  if (!weights.ok()) return {};
  return Evaluate(**weights, dir + "/reference.safetensors");
}

void ExpectSameReports(const std::vector<LengthReport>& respelled, const std::vector<LengthReport>& original) {
  ASSERT_EQ(respelled.size(), original.size());
  ASSERT_EQ(original.size(), 2u);
  for (size_t i = 0; i < original.size(); ++i) {
    SCOPED_TRACE("length " + std::to_string(original[i].length));
    EXPECT_TRUE(respelled[i].passed);
    EXPECT_EQ(respelled[i].prompt_rel_l2, original[i].prompt_rel_l2);
    EXPECT_EQ(respelled[i].decode_rel_l2, original[i].decode_rel_l2);
    EXPECT_EQ(respelled[i].greedy_matched, original[i].greedy_total);
  }
}

constexpr char kFloatInfinity[] = "{\n      \"__float__\": \"Infinity\"\n    }";

TEST(RespelledGoldenTest, Mamba2WithBareInfinityAndNormBeforeGate) {
  std::string config = ReadText(FixtureDir("mamba2-tiny") + "/config.json");
  Replace(config, kFloatInfinity, "Infinity");
  Replace(config, "\"norm_before_gate\": false", "\"norm_before_gate\": true");
  ExpectSameReports(Evaluate(RespelledDir("mamba2-tiny", "mamba2-hub", config)), Evaluate(FixtureDir("mamba2-tiny")));
}

TEST(RespelledGoldenTest, BambaWithAttnRotaryEmbAndTopLevelRopeTheta) {
  std::string config = ReadText(FixtureDir("bamba-tiny") + "/config.json");
  // As Bamba-9B publishes it: rotary dims as a count, theta at the top level.
  Replace(config, "\"partial_rotary_factor\": 0.5,", "\"attn_rotary_emb\": 8,");
  Replace(config,
          "\"rope_parameters\": {\n    \"partial_rotary_factor\": 0.5,\n    \"rope_theta\": 10000.0,\n    "
          "\"rope_type\": \"default\"\n  },",
          "\"rope_theta\": 10000.0,");
  Replace(config, kFloatInfinity, "Infinity");
  ExpectSameReports(Evaluate(RespelledDir("bamba-tiny", "bamba-hub", config)), Evaluate(FixtureDir("bamba-tiny")));

  // The same file with a rotary count transformers would not use is refused by name.
  std::string wrong = config;
  Replace(wrong, "\"attn_rotary_emb\": 8,", "\"attn_rotary_emb\": 16,");
  absl::StatusOr<std::unique_ptr<ModelWeights>> refused =
      LoadModelWeights(RespelledDir("bamba-tiny", "bamba-wrong", wrong));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("attn_rotary_emb"), std::string::npos) << refused.status();
}

TEST(RespelledGoldenTest, NemotronHWithHybridOverridePatternAndHubAliases) {
  std::string config = ReadText(FixtureDir("nemotronh-tiny") + "/config.json");
  absl::StatusOr<ModelConfig> original = LoadModelConfig(FixtureDir("nemotronh-tiny"));
  ASSERT_TRUE(original.ok()) << original.status();
  // layers_block_type [...] → hybrid_override_pattern "M-M*-M-*-" (the hub's spelling).
  const size_t begin = config.find("\"layers_block_type\"");
  ASSERT_NE(begin, std::string::npos);
  const size_t end = config.find(']', begin);
  config.replace(begin, end + 1 - begin,
                 "\"hybrid_override_pattern\": \"" + original->LayerPattern() + "\", \"num_hidden_layers\": " +
                     std::to_string(original->num_layers));
  Replace(config, "\"n_groups\"", "\"mamba_n_groups\"");
  Replace(config, "\"conv_kernel\"", "\"mamba_d_conv\"");
  Replace(config, kFloatInfinity, "Infinity");
  ExpectSameReports(Evaluate(RespelledDir("nemotronh-tiny", "nemotronh-hub", config)),
                    Evaluate(FixtureDir("nemotronh-tiny")));
}

// mamba2-tiny as mamba_ssm saves it: its own config.json and tensor names
// (backbone.embedding, no "s"). mamba_ssm normalizes the gated norm per group
// where transformers normalizes over d_inner, so the expected logits are the
// transformers-format checkpoint's with the grouped norm: everything else (every
// tensor, every shape, every other setting) must come out identical.
TEST(RespelledGoldenTest, Mamba2InMambaSsmFormat) {
  const std::string original_dir = FixtureDir("mamba2-tiny");
  absl::StatusOr<ModelConfig> hf = LoadModelConfig(original_dir);
  ASSERT_TRUE(hf.ok()) << hf.status();
  const std::string config = R"({
    "d_model": 64, "d_intermediate": 0, "n_layer": 4, "vocab_size": 512,
    "ssm_cfg": {"layer": "Mamba2", "d_state": 16, "d_conv": 4, "expand": 2, "headdim": 16, "ngroups": 2,
                "chunk_size": 16},
    "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": true, "residual_in_fp32": true, "fused_add_norm": true,
    "pad_vocab_size_multiple": 8, "tie_embeddings": false
  })";
  const std::string dir = RespelledDir("mamba2-tiny", "mamba2-mamba-ssm", config, /*link_weights=*/false);
  {  // the weights under mamba_ssm's names
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> in = SafetensorsFile::Open(original_dir + "/model.safetensors");
    ASSERT_TRUE(in.ok()) << in.status();
    std::vector<SafetensorsEntry> entries;
    for (const std::string& name : (*in)->TensorNames()) {
      const TensorInfo* info = (*in)->Find(name);
      ASSERT_NE(info, nullptr);
      const std::string renamed = name == "backbone.embeddings.weight" ? "backbone.embedding.weight" : name;
      entries.push_back({renamed, info->dtype, info->shape});
    }
    absl::StatusOr<std::unique_ptr<SafetensorsWriter>> out =
        SafetensorsWriter::Create(dir + "/model.safetensors", entries);
    ASSERT_TRUE(out.ok()) << out.status();
    for (const std::string& name : (*in)->TensorNames()) {
      const TensorInfo* info = (*in)->Find(name);
      ASSERT_TRUE((*out)->Append(absl::MakeConstSpan((*in)->Data(*info), info->data_end - info->data_begin)).ok());
    }
    ASSERT_TRUE((*out)->Finish().ok());
  }
  absl::StatusOr<std::unique_ptr<ModelWeights>> ssm = LoadModelWeights(dir);
  ASSERT_TRUE(ssm.ok()) << ssm.status();
  EXPECT_EQ((*ssm)->config.naming, WeightNaming::kMambaSsm);
  EXPECT_EQ((*ssm)->config.mamba.num_heads, hf->mamba.num_heads);
  EXPECT_EQ((*ssm)->config.mamba.in_proj_width(), hf->mamba.in_proj_width());
  EXPECT_EQ((*ssm)->config.mamba.norm_group_size(), hf->mamba.d_inner() / 2);

  absl::StatusOr<std::unique_ptr<ModelWeights>> grouped = LoadModelWeights(original_dir);
  ASSERT_TRUE(grouped.ok()) << grouped.status();
  (*grouped)->config.mamba.norm_per_group = true;
  const std::vector<LengthReport> expected = Evaluate(**grouped, original_dir + "/reference.safetensors");
  const std::vector<LengthReport> actual = Evaluate(**ssm, dir + "/reference.safetensors");
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].prompt_rel_l2, expected[i].prompt_rel_l2);
    EXPECT_EQ(actual[i].decode_rel_l2, expected[i].decode_rel_l2);
    EXPECT_EQ(actual[i].greedy_matched, expected[i].greedy_matched);
  }
}

}  // namespace
}  // namespace tessera
