// config.json parsing: every family and spelling the fixtures and hub files
// use, and a named error for each thing not understood.
#include "model/model_config.h"

#include <cmath>
#include <string>

#include "gtest/gtest.h"

namespace tessera {
namespace {

std::string Kinds(const ModelConfig& c) {
  std::string s;
  for (const BlockSpec& b : c.blocks) {
    s += b.kind == BlockKind::kMamba ? 'M' : b.kind == BlockKind::kAttention ? '*' : b.kind == BlockKind::kMoe ? 'E' : '-';
  }
  return s;
}

TEST(ModelConfigTest, FixturesParse) {
  const std::string root = std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/";
  absl::StatusOr<ModelConfig> mamba2 = LoadModelConfig(root + "mamba2-tiny");
  ASSERT_TRUE(mamba2.ok()) << mamba2.status();
  EXPECT_EQ(mamba2->family, ModelFamily::kMamba2);
  EXPECT_EQ(Kinds(*mamba2), "MMMM");
  EXPECT_EQ(mamba2->mamba.in_proj_width(), 328);
  EXPECT_EQ(mamba2->mamba.norm_group_size(), 128);
  EXPECT_TRUE(std::isinf(mamba2->mamba.dt_max));
  EXPECT_EQ(mamba2->lm_head_weight, "lm_head.weight");

  absl::StatusOr<ModelConfig> bamba = LoadModelConfig(root + "bamba-tiny");
  ASSERT_TRUE(bamba.ok()) << bamba.status();
  EXPECT_EQ(Kinds(*bamba), "M-M-*-M-M-*-");
  EXPECT_EQ(bamba->attention.rotary_dim, 8);
  EXPECT_EQ(bamba->attention.num_kv_heads, 2);
  EXPECT_EQ(bamba->mamba.num_groups, 2);
  EXPECT_EQ(bamba->mlp.activation, MlpActivation::kSwiGlu);

  absl::StatusOr<ModelConfig> nemotron = LoadModelConfig(root + "nemotronh-tiny");
  ASSERT_TRUE(nemotron.ok()) << nemotron.status();
  EXPECT_EQ(Kinds(*nemotron), "M-M*-M-*-");
  EXPECT_EQ(nemotron->num_layers, 9);
  EXPECT_EQ(nemotron->attention.rotary_dim, 0);
  EXPECT_EQ(nemotron->mamba.norm_group_size(), 64);
  EXPECT_EQ(nemotron->mlp.activation, MlpActivation::kRelu2);
}

constexpr char kHubNemotron[] = R"({
  "model_type": "nemotron_h", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 4,
  "hybrid_override_pattern": "M-*M", "mamba_num_heads": 4, "mamba_head_dim": 16, "mamba_n_groups": 2,
  "ssm_state_size": 8, "num_attention_heads": 4, "num_key_value_heads": 1, "attention_head_dim": 8,
  "intermediate_size": 64, "tie_word_embeddings": true, "time_step_limit": [0.0, 0.5]
})";

TEST(ModelConfigTest, HubSpellingsAndTiedEmbeddings) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(kHubNemotron, "hub.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(Kinds(*c), "M-*M");
  EXPECT_EQ(c->mamba.num_groups, 2);
  EXPECT_EQ(c->attention.head_dim, 8);
  EXPECT_FLOAT_EQ(c->mamba.dt_max, 0.5f);
  EXPECT_EQ(c->lm_head_weight, c->embedding_weight);
}

void ExpectErrorNaming(absl::string_view json, absl::string_view key) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(json, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(key), absl::string_view::npos) << c.status();
  EXPECT_NE(c.status().message().find("cfg.json"), absl::string_view::npos) << c.status();
}

TEST(ModelConfigTest, ErrorsNameTheKey) {
  ExpectErrorNaming(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8})", "model_type");
  ExpectErrorNaming("{not json", "not valid JSON");
  ExpectErrorNaming(R"({"vocab_size": 10})", "model_type");
  std::string moe = kHubNemotron;  // an E layer needs the MoE keys
  moe.replace(moe.find("M-*M"), 4, "M-*E");
  ExpectErrorNaming(moe, "n_routed_experts");
  std::string bad_heads = kHubNemotron;
  bad_heads.replace(bad_heads.find("\"mamba_n_groups\": 2"), 19, "\"mamba_n_groups\": 3");
  ExpectErrorNaming(bad_heads, "mamba_num_heads");
  std::string missing = kHubNemotron;
  missing.replace(missing.find("\"ssm_state_size\": 8,"), 20, "");
  ExpectErrorNaming(missing, "ssm_state_size");
  std::string wrong_count = kHubNemotron;
  wrong_count.replace(wrong_count.find("\"num_hidden_layers\": 4"), 22, "\"num_hidden_layers\": 5");
  ExpectErrorNaming(wrong_count, "num_hidden_layers");
  std::string bad_limit = kHubNemotron;
  bad_limit.replace(bad_limit.find("[0.0, 0.5]"), 10, "[0.0, \"big\"]");
  ExpectErrorNaming(bad_limit, "time_step_limit");
}

}  // namespace
}  // namespace tessera
