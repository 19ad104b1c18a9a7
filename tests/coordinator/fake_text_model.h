// The model the text tests' coordinators serve in front of fake workers: a
// 512-token vocabulary matched by the bpe512-gpt2split tokenizer (attached
// when asked), EOS 2, four layers, and that tokenizer loaded on its own for
// tests that make the workers' tokens from text.
#pragma once

#include <memory>
#include <string>

#include "coordinator/served_model.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace tessera::testing {

inline constexpr char kFakeTextTokenizerPath[] = TESSERA_TEST_DATA_DIR "/tokenizers/bpe512-gpt2split/tokenizer.json";

inline ServedModel FakeTextModel(bool with_tokenizer = true) {
  ServedModel model;
  model.model_type = "fake";
  model.model_path = "/nowhere/fake";
  model.vocab_size = 512;
  model.num_layers = 4;
  model.eos_token_id = 2;
  if (with_tokenizer) {
    EXPECT_TRUE(AttachTokenizer(kFakeTextTokenizerPath, model).ok());
  }
  return model;
}

// `text`'s ids under that tokenizer, without template tokens.
inline std::vector<int32_t> FakeTextIds(const std::string& text) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromFile(kFakeTextTokenizerPath);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  if (!tokenizer.ok()) return {};
  absl::StatusOr<std::vector<int32_t>> ids = (*tokenizer)->Encode(text, /*add_special_tokens=*/false);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *std::move(ids) : std::vector<int32_t>();
}

}  // namespace tessera::testing
