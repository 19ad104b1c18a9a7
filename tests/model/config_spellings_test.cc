// The spellings the hub publishes: bare Infinity/-Infinity/NaN (outside
// strings only) with errors that give line and column; every key a family
// refuses fails by name when set to a value transformers would act on; keys
// nobody knows are reported, not silently dropped; hub aliases.
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "model/config_json.h"
#include "model/config_keys.h"
#include "model/model_config.h"
#include "nlohmann/json.hpp"

namespace tessera {
namespace {

std::string ReadConfig(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Fixture(const std::string& name) { return std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/" + name; }
std::string Hub(const std::string& name) { return std::string(TESSERA_TEST_DATA_DIR) + "/hub-configs/" + name; }

TEST(ConfigJsonTest, BareNonFiniteLiteralsOutsideStrings) {
  absl::StatusOr<Json> j = ParseConfigJson(
      R"({"limit": [0.0, Infinity], "low": -Infinity, "nan": NaN, "text": "Infinity and NaN", "Infinity": 1,
          "list": [NaN, "NaN"]})",
      "c.json");
  ASSERT_TRUE(j.ok()) << j.status();
  const ConfigReader r(*j, "c.json");
  const Json& limit = *r.Find({"limit"});
  EXPECT_TRUE(std::isinf(*r.FloatValue(limit[1], {"limit"})));
  EXPECT_EQ(*r.Float({"low"}), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(*r.Float({"nan"})));
  EXPECT_EQ(*r.StringOr({"text"}, ""), "Infinity and NaN");  // strings are never rewritten
  EXPECT_EQ(*r.Int({"Infinity"}), 1);                         // nor keys
  EXPECT_EQ((*j)["list"][1], "NaN");
}

TEST(ConfigJsonTest, NumbersOutOfRangeAreAnErrorNotAnException) {
  // Found by tests/fuzz/model_fuzzer: nlohmann throws out_of_range, not parse_error.
  absl::StatusOr<Json> j = ParseConfigJson(R"({"layer_norm_epsilon": 1e405})", "config.json");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("number overflow"), std::string::npos) << j.status();
}

TEST(ConfigJsonTest, IdentifiersThatOnlyStartLikeALiteralStayErrors) {
  EXPECT_FALSE(ParseConfigJson(R"({"a": InfinityX})", "c.json").ok());
  EXPECT_FALSE(ParseConfigJson(R"({"a": NaNa})", "c.json").ok());
}

TEST(ConfigJsonTest, ErrorsGiveLineColumnAndCauseInTheFileAsWritten) {
  // The rewrite of Infinity on line 2 must not shift the column reported there.
  absl::StatusOr<Json> j = ParseConfigJson("{\n  \"a\": [Infinity, }\n}", "config.json");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(j.status().message().find("config.json: not valid JSON at line 2, column 19"), std::string::npos)
      << j.status();
  EXPECT_NE(j.status().message().find("unexpected '}'"), std::string::npos) << j.status();
  absl::StatusOr<Json> truncated = ParseConfigJson("{\"a\": 1,", "config.json");
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("line 1, column"), std::string::npos) << truncated.status();
}

// A config of each family that parses, to set refused keys on.
std::string BaseConfig(ModelFamily family, WeightNaming naming) {
  switch (family) {
    case ModelFamily::kMamba2:
      return naming == WeightNaming::kMambaSsm ? ReadConfig(Hub("state-spaces--mamba2-130m"))
                                               : ReadConfig(Fixture("mamba2-tiny"));
    case ModelFamily::kBamba:
      return ReadConfig(Fixture("bamba-tiny"));
    case ModelFamily::kNemotronH:
      return ReadConfig(Fixture("nemotronh-tiny"));
    case ModelFamily::kGraniteMoeHybrid:
      return ReadConfig(std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/granitemoe-tiny");
  }
  return "";
}

struct FamilyCase {
  ModelFamily family;
  WeightNaming naming;
};

TEST(ConfigKeysTest, EveryRefusedKeyFailsByNameAndItsAllowedValuePasses) {
  for (const FamilyCase& f : {FamilyCase{ModelFamily::kMamba2, WeightNaming::kTransformers},
                              FamilyCase{ModelFamily::kMamba2, WeightNaming::kMambaSsm},
                              FamilyCase{ModelFamily::kBamba, WeightNaming::kTransformers},
                              FamilyCase{ModelFamily::kNemotronH, WeightNaming::kTransformers},
                              FamilyCase{ModelFamily::kGraniteMoeHybrid, WeightNaming::kTransformers}}) {
    const std::string base = BaseConfig(f.family, f.naming);
    ASSERT_FALSE(base.empty());
    ASSERT_TRUE(ParseModelConfig(base, "base.json").ok()) << ModelFamilyName(f.family);
    ASSERT_FALSE(RefusedConfigKeys(f.family, f.naming).empty());
    for (const RefusedKey& refused : RefusedConfigKeys(f.family, f.naming)) {
      SCOPED_TRACE(std::string(ModelFamilyName(f.family)) + " " + refused.key);
      nlohmann::json config = nlohmann::json::parse(base);
      config[refused.key] = nlohmann::json::parse(refused.example_json);
      absl::StatusOr<ModelConfig> c = ParseModelConfig(config.dump(), "cfg.json");
      ASSERT_FALSE(c.ok()) << "a refused key with a value transformers acts on was accepted";
      EXPECT_NE(c.status().message().find(std::string("'") + refused.key + "'"), std::string::npos) << c.status();
      config[refused.key] = nlohmann::json::parse(refused.allowed_json);
      EXPECT_TRUE(ParseModelConfig(config.dump(), "cfg.json").ok());
    }
  }
}

TEST(ConfigKeysTest, UnknownKeysAreReportedAndKnownOnesAreNot) {
  for (const char* fixture : {"mamba2-tiny", "bamba-tiny", "nemotronh-tiny"}) {
    SCOPED_TRACE(fixture);
    absl::StatusOr<ModelConfig> clean = LoadModelConfig(Fixture(fixture));
    ASSERT_TRUE(clean.ok()) << clean.status();
    EXPECT_TRUE(clean->unread_keys.empty()) << "a key transformers writes is in no list: " << clean->unread_keys[0];
    nlohmann::json config = nlohmann::json::parse(ReadConfig(Fixture(fixture)));
    config["tessera_unknown_key"] = 3;
    absl::StatusOr<ModelConfig> c = ParseModelConfig(config.dump(), "cfg.json");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->unread_keys, std::vector<std::string>{"tessera_unknown_key"});
  }
}

TEST(ConfigSpellingsTest, NemotronHAliases) {
  nlohmann::json config = nlohmann::json::parse(ReadConfig(Fixture("nemotronh-tiny")));
  absl::StatusOr<ModelConfig> original = ParseModelConfig(config.dump(), "a.json");
  ASSERT_TRUE(original.ok());
  config["layer_types"] = config["layers_block_type"];  // the attribute_map alias
  config.erase("layers_block_type");
  config["mamba_dt_limit"] = nlohmann::json::array({0.0, 0.25});
  config.erase("time_step_limit");
  config["mamba_chunk_size"] = config["chunk_size"];
  config.erase("chunk_size");
  absl::StatusOr<ModelConfig> c = ParseModelConfig(config.dump(), "b.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->LayerPattern(), original->LayerPattern());
  EXPECT_FLOAT_EQ(c->mamba.dt_max, 0.25f);
  EXPECT_EQ(c->mamba.chunk_size, original->mamba.chunk_size);
  // The pre-5.x vocabulary.
  config["layer_types"] = nlohmann::json::array({"mamba", "mlp", "mamba", "attention", "mlp", "mamba", "mlp",
                                                 "attention", "mlp"});
  absl::StatusOr<ModelConfig> legacy = ParseModelConfig(config.dump(), "c.json");
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  EXPECT_EQ(legacy->LayerPattern(), "M-M*-M-*-");
}

TEST(ConfigSpellingsTest, MoeFamiliesAreReadInFullAndServed) {
  absl::StatusOr<ModelConfig> nemotron = LoadModelConfig(std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/nemotronh-moe-tiny");
  ASSERT_TRUE(nemotron.ok()) << nemotron.status();
  EXPECT_EQ(nemotron->LayerPattern(), "ME*EM-E");
  EXPECT_EQ(nemotron->moe.experts, 8);
  EXPECT_EQ(nemotron->moe.top_k, 2);
  EXPECT_FLOAT_EQ(nemotron->moe.routed_scaling_factor, 2.5f);
  EXPECT_EQ(nemotron->moe.routing, MoeRouting::kSigmoidBiasedTopK);
  EXPECT_TRUE(CheckServed(*nemotron).ok()) << CheckServed(*nemotron);

  absl::StatusOr<ModelConfig> granite = LoadModelConfig(std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/granitemoe-tiny");
  ASSERT_TRUE(granite.ok()) << granite.status();
  EXPECT_EQ(granite->LayerPattern(), "MM*MM");
  EXPECT_EQ(granite->moe.experts, 6);
  EXPECT_EQ(granite->moe.routing, MoeRouting::kSoftmaxTopK);
  EXPECT_FLOAT_EQ(granite->multipliers.embedding, 12.0f);
  EXPECT_FLOAT_EQ(granite->multipliers.residual, 0.22f);
  EXPECT_FLOAT_EQ(granite->multipliers.logits_scaling, 6.0f);
  EXPECT_FLOAT_EQ(granite->attention.softmax_scale, 0.0078125f);
  EXPECT_EQ(granite->attention.rotary_dim, 0);
  EXPECT_TRUE(granite->unread_keys.empty()) << granite->unread_keys[0];
  EXPECT_TRUE(CheckServed(*granite).ok()) << CheckServed(*granite);
}

TEST(ConfigSpellingsTest, LatentMoeIsRefusedByName) {
  nlohmann::json config =
      nlohmann::json::parse(ReadConfig(std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/nemotronh-moe-tiny"));
  config["moe_latent_size"] = 16;
  absl::StatusOr<ModelConfig> latent = ParseModelConfig(config.dump(), "c.json");
  ASSERT_TRUE(latent.ok()) << latent.status();
  const absl::Status served = CheckServed(*latent);
  EXPECT_EQ(served.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(served.message().find("moe_latent_size"), absl::string_view::npos) << served;
}

TEST(ConfigSpellingsTest, MambaSsmConfigsNameWhatTheyCannotTake) {
  nlohmann::json config = nlohmann::json::parse(ReadConfig(Hub("state-spaces--mamba2-130m")));
  config["ssm_cfg"]["layer"] = "Mamba1";
  absl::StatusOr<ModelConfig> mamba1 = ParseModelConfig(config.dump(), "cfg.json");
  ASSERT_FALSE(mamba1.ok());
  EXPECT_NE(mamba1.status().message().find("'ssm_cfg.layer'"), std::string::npos) << mamba1.status();
  config["ssm_cfg"]["layer"] = "Mamba2";
  config["ssm_cfg"]["activation"] = "relu";
  absl::StatusOr<ModelConfig> relu = ParseModelConfig(config.dump(), "cfg.json");
  ASSERT_FALSE(relu.ok());
  EXPECT_NE(relu.status().message().find("'ssm_cfg.activation'"), std::string::npos) << relu.status();
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// A config asking for absurd sizes fails before anything is allocated.
TEST(ConfigLimitsTest, AbsurdSizesAreRefusedByName) {
  nlohmann::json config = nlohmann::json::parse(ReadConfig(Fixture("mamba2-tiny")));
  config["num_hidden_layers"] = 1000000000;
  absl::StatusOr<ModelConfig> layers = ParseModelConfig(config.dump(), "cfg.json");
  ASSERT_FALSE(layers.ok());
  EXPECT_NE(layers.status().message().find("'num_hidden_layers'"), std::string::npos) << layers.status();
  config = nlohmann::json::parse(ReadConfig(Fixture("mamba2-tiny")));
  config["vocab_size"] = int64_t{1} << 40;
  absl::StatusOr<ModelConfig> vocab = ParseModelConfig(config.dump(), "cfg.json");
  ASSERT_FALSE(vocab.ok());
  EXPECT_NE(vocab.status().message().find("'vocab_size'"), std::string::npos) << vocab.status();
  nlohmann::json nemotron = nlohmann::json::parse(ReadConfig(Fixture("nemotronh-tiny")));
  nemotron.erase("layers_block_type");
  nemotron.erase("num_hidden_layers");
  nemotron["hybrid_override_pattern"] = std::string(20000, 'M');
  absl::StatusOr<ModelConfig> pattern = ParseModelConfig(nemotron.dump(), "cfg.json");
  ASSERT_FALSE(pattern.ok());
  EXPECT_NE(pattern.status().message().find("layers"), std::string::npos) << pattern.status();
}

}  // namespace
}  // namespace tessera
