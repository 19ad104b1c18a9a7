// A random checkpoint is only useful if the engine loads it exactly as a
// downloaded one and computes something non-degenerate on it: every tensor
// LoadModelWeights asks for is there with its shape (and nothing else is), the
// bytes depend on the seed alone (not the thread count), and the CPU forward
// pass gives finite, spread-out logits.
#include "tools/random_model_command.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "gtest/gtest.h"
#include "model/model_weights.h"
#include "model/safetensors.h"
#include "worker/cpu/cpu_backend.h"

namespace tessera {

void PrintTo(DType dtype, std::ostream* out) { *out << DTypeName(dtype); }

namespace {

constexpr char kPattern[] = "M-M*M-M*";

std::string TempDir(const std::string& name) {
  return testing::TempDir() + "/random_model_test_" + std::to_string(::getpid()) + "_" + name;
}

RandomModelOptions TinyOptions(const std::string& dir, DType dtype, uint64_t seed, int threads = 2) {
  RandomModelOptions o;
  o.out_dir = dir;
  o.preset = "tiny";
  o.pattern = kPattern;
  o.vocab = 256;
  o.seed = seed;
  o.dtype = dtype;
  o.threads = threads;
  return o;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every tensor the weights bind, by name.
std::set<std::string> BoundTensorNames(const ModelWeights& w) {
  std::set<std::string> names = {w.config.embedding_weight, w.config.final_norm_weight, w.config.lm_head_weight};
  for (const BlockSpec& b : w.config.blocks) {
    names.insert(b.norm_weight);
    const std::string& p = b.prefix;
    switch (b.kind) {
      case BlockKind::kMamba:
        for (const char* n : {"in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D",
                              "norm.weight", "out_proj.weight"}) {
          names.insert(p + n);
        }
        break;
      case BlockKind::kAttention:
        for (const char* n : {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"}) names.insert(p + n);
        break;
      case BlockKind::kMlp:
        for (const char* n : {"up_proj.weight", "down_proj.weight"}) names.insert(p + n);
        break;
      case BlockKind::kMoe:
        if (w.config.family == ModelFamily::kGraniteMoeHybrid) {
          for (const char* n : {"block_sparse_moe.router.layer.weight", "block_sparse_moe.input_linear.weight",
                                "block_sparse_moe.output_linear.weight", "shared_mlp.input_linear.weight",
                                "shared_mlp.output_linear.weight"}) {
            names.insert(p + n);
          }
          break;
        }
        for (const char* n : {"gate.weight", "gate.e_score_correction_bias", "shared_experts.up_proj.weight",
                              "shared_experts.down_proj.weight"}) {
          names.insert(p + n);
        }
        for (int64_t e = 0; e < w.config.moe.experts; ++e) {
          names.insert(p + "experts." + std::to_string(e) + ".up_proj.weight");
          names.insert(p + "experts." + std::to_string(e) + ".down_proj.weight");
        }
        break;
    }
  }
  return names;
}

class RandomModelTest : public testing::TestWithParam<DType> {};

TEST_P(RandomModelTest, LoadsWithEveryTensorShapedAndStoredAsAsked) {
  const DType dtype = GetParam();
  const std::string dir = TempDir(std::string("load_") + std::string(DTypeName(dtype)));
  ASSERT_TRUE(WriteRandomModel(TinyOptions(dir, dtype, 7), nullptr).ok());

  auto weights = LoadModelWeights(dir);  // checks every tensor's shape against the config
  ASSERT_TRUE(weights.ok()) << weights.status();
  const ModelConfig& c = (*weights)->config;
  EXPECT_EQ(c.model_type, "nemotron_h");
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.num_layers, 8);
  EXPECT_EQ(c.CountBlocks(BlockKind::kMamba), 4);
  EXPECT_EQ(c.CountBlocks(BlockKind::kAttention), 2);
  EXPECT_EQ(c.CountBlocks(BlockKind::kMlp), 2);
  EXPECT_EQ(c.mlp.activation, MlpActivation::kRelu2);
  EXPECT_FALSE(c.tie_word_embeddings);

  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const std::vector<std::string> stored = (*file)->TensorNames();
  EXPECT_EQ(std::set<std::string>(stored.begin(), stored.end()), BoundTensorNames(**weights));
  for (const std::string& name : stored) {
    const TensorInfo* t = (*file)->Find(name);
    EXPECT_EQ(t->dtype, dtype) << name;
    EXPECT_EQ(t->data_begin % 8, 0u) << name;
  }

  // The initialisers: norms 1, D 1, A = -exp(A_log) in [-16, -1], conv bias 0.
  for (const BlockWeights& b : (*weights)->blocks) {
    EXPECT_EQ(b.norm.data[0], 1.0f);
    if (const auto* m = std::get_if<MambaWeights>(&b.op)) {
      for (float a : m->A) EXPECT_TRUE(a <= -0.99f && a >= -16.1f) << a;
      EXPECT_EQ(m->D.data[0], 1.0f);
      EXPECT_EQ(m->conv_bias.data[0], 0.0f);
    }
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(DTypes, RandomModelTest, testing::Values(DType::kBF16, DType::kF32),
                         [](const testing::TestParamInfo<DType>& info) { return std::string(DTypeName(info.param)); });

TEST(RandomModelDeterminismTest, SameSeedSameBytesWhateverTheThreadsAndOtherSeedOtherBytes) {
  const std::string a = TempDir("seed_a"), b = TempDir("seed_b"), c = TempDir("seed_c");
  ASSERT_TRUE(WriteRandomModel(TinyOptions(a, DType::kBF16, 11, /*threads=*/1), nullptr).ok());
  ASSERT_TRUE(WriteRandomModel(TinyOptions(b, DType::kBF16, 11, /*threads=*/3), nullptr).ok());
  ASSERT_TRUE(WriteRandomModel(TinyOptions(c, DType::kBF16, 12, /*threads=*/1), nullptr).ok());
  const std::string bytes_a = ReadBytes(a + "/model.safetensors");
  EXPECT_GT(bytes_a.size(), 100000u);
  EXPECT_TRUE(bytes_a == ReadBytes(b + "/model.safetensors"));
  EXPECT_TRUE(bytes_a != ReadBytes(c + "/model.safetensors"));
  EXPECT_EQ(ReadBytes(a + "/config.json"), ReadBytes(b + "/config.json"));
  for (const std::string& d : {a, b, c}) std::filesystem::remove_all(d);
}

// The MoE preset: E layers with every expert's tensors, loaded as the CPU
// engine runs them, and a forward pass through them that stays finite.
TEST(RandomModelMoeTest, TinyMoeLoadsEveryExpertAndRuns) {
  const std::string dir = TempDir("moe");
  RandomModelOptions o = TinyOptions(dir, DType::kF32, 9);
  o.preset = "tiny-moe";
  o.pattern = "";  // the preset's own: ME*E
  ASSERT_TRUE(WriteRandomModel(o, nullptr).ok());
  auto weights = LoadModelWeights(dir);
  ASSERT_TRUE(weights.ok()) << weights.status();
  const ModelConfig& c = (*weights)->config;
  EXPECT_EQ(c.LayerPattern(), "ME*E");
  EXPECT_EQ(c.moe.experts, 8);
  EXPECT_EQ(c.moe.top_k, 2);
  EXPECT_EQ(c.moe.routing, MoeRouting::kSigmoidBiasedTopK);
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const std::vector<std::string> stored = (*file)->TensorNames();
  EXPECT_EQ(std::set<std::string>(stored.begin(), stored.end()), BoundTensorNames(**weights));

  absl::StatusOr<std::unique_ptr<Engine>> engine = MakeCpuEngineView(**weights);
  ASSERT_TRUE(engine.ok()) << engine.status();
  absl::StatusOr<std::unique_ptr<ShardState>> state = (*engine)->NewState(0, 16);
  ASSERT_TRUE(state.ok()) << state.status();
  std::vector<int32_t> prompt(16);  // (tokens,)
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 37) % c.vocab_size);
  absl::StatusOr<std::vector<float>> logits = (*engine)->Forward(**state, prompt, LogitsRows::kAll);
  ASSERT_TRUE(logits.ok()) << logits.status();
  for (float v : *logits) ASSERT_TRUE(std::isfinite(v));
  std::filesystem::remove_all(dir);
}

// The granitemoehybrid presets write the hub's spelling (layer_types, stacked
// experts, tied embeddings, the four multipliers) and it runs.
TEST(RandomModelMoeTest, TinyGraniteLoadsAndRuns) {
  const std::string dir = TempDir("granite");
  RandomModelOptions o = TinyOptions(dir, DType::kBF16, 4);
  o.preset = "tiny-granite";
  o.pattern = "";  // M*M
  ASSERT_TRUE(WriteRandomModel(o, nullptr).ok());
  auto weights = LoadModelWeights(dir);
  ASSERT_TRUE(weights.ok()) << weights.status();
  const ModelConfig& c = (*weights)->config;
  EXPECT_EQ(c.model_type, "granitemoehybrid");
  EXPECT_EQ(c.blocks.size(), 6u);  // mixer + MoE per layer
  EXPECT_EQ(c.moe.routing, MoeRouting::kSoftmaxTopK);
  EXPECT_FLOAT_EQ(c.multipliers.residual, 0.22f);
  EXPECT_TRUE(c.tie_word_embeddings);
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const std::vector<std::string> stored = (*file)->TensorNames();
  EXPECT_EQ(std::set<std::string>(stored.begin(), stored.end()), BoundTensorNames(**weights));
  absl::StatusOr<std::unique_ptr<Engine>> engine = MakeCpuEngineView(**weights);
  ASSERT_TRUE(engine.ok()) << engine.status();
  absl::StatusOr<std::unique_ptr<ShardState>> state = (*engine)->NewState(0, 8);
  ASSERT_TRUE(state.ok()) << state.status();
  const std::vector<int32_t> prompt = {3, 1, 4, 1, 5, 9, 2, 6};  // (tokens,)
  absl::StatusOr<std::vector<float>> logits = (*engine)->Forward(**state, prompt, LogitsRows::kAll);
  ASSERT_TRUE(logits.ok()) << logits.status();
  for (float v : *logits) ASSERT_TRUE(std::isfinite(v));
  o.pattern = "ME";  // granite layers are M or *, each followed by its MoE block
  EXPECT_EQ(WriteRandomModel(o, nullptr).code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

TEST(RandomModelOptionsTest, RejectsUnknownPresetAndBadPattern) {
  RandomModelOptions o = TinyOptions(TempDir("bad"), DType::kBF16, 0);
  o.preset = "nemotron-h-9000b";
  EXPECT_EQ(WriteRandomModel(o, nullptr).code(), absl::StatusCode::kInvalidArgument);
  o = TinyOptions(TempDir("bad"), DType::kBF16, 0);
  o.pattern = "M-X";
  EXPECT_EQ(WriteRandomModel(o, nullptr).code(), absl::StatusCode::kInvalidArgument);
  o.pattern = "ME";  // the tiny preset has no expert shapes
  EXPECT_EQ(WriteRandomModel(o, nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(TempDir("bad") + "/model.safetensors"));
}

// Logits of N(0, 1)-ish scale at every position: finite, spread over the
// vocabulary, and not the same argmax everywhere.
TEST(RandomModelForwardTest, CpuForwardGivesFiniteSpreadOutLogits) {
  const std::string dir = TempDir("forward");
  ASSERT_TRUE(WriteRandomModel(TinyOptions(dir, DType::kBF16, 3), nullptr).ok());
  auto weights = LoadModelWeights(dir);
  ASSERT_TRUE(weights.ok()) << weights.status();
  const int64_t vocab = (*weights)->config.vocab_size;

  std::mt19937 rng(5);
  std::vector<int32_t> prompt(40);  // (tokens,)
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % vocab);
  absl::StatusOr<std::unique_ptr<Engine>> engine = MakeCpuEngineView(**weights);
  ASSERT_TRUE(engine.ok()) << engine.status();
  absl::StatusOr<std::unique_ptr<ShardState>> state = (*engine)->NewState(0, 40);
  ASSERT_TRUE(state.ok()) << state.status();
  absl::StatusOr<std::vector<float>> logits = (*engine)->Forward(**state, prompt, LogitsRows::kAll);
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_EQ(logits->size(), prompt.size() * vocab);  // (tokens, vocab)

  std::set<int64_t> argmaxes;
  for (size_t row = 0; row < prompt.size(); ++row) {
    const float* r = logits->data() + row * vocab;
    double sum = 0, sum_sq = 0;
    int64_t best = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      ASSERT_TRUE(std::isfinite(r[v])) << "row " << row << " vocab " << v;
      sum += r[v];
      sum_sq += static_cast<double>(r[v]) * r[v];
      if (r[v] > r[best]) best = v;
    }
    const double mean = sum / vocab;
    const double stddev = std::sqrt(sum_sq / vocab - mean * mean);
    EXPECT_GT(stddev, 0.2) << "row " << row;
    EXPECT_LT(stddev, 10.0) << "row " << row;
    argmaxes.insert(best);
  }
  EXPECT_GT(argmaxes.size(), prompt.size() / 4) << "argmax barely depends on the input";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tessera
