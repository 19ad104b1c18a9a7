// The Hugging Face fixtures (tests/data/hf-tiny) as the tests that run every
// family name and read them: their directories, a reference prompt, and the
// five families as a parameter list with readable test names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/safetensors.h"

namespace tessera::testing {

inline std::string HfTinyDir(const std::string& fixture) {
  return std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/" + fixture;
}

// The first `length` ids of the fixture's 200-token reference prompt.
inline std::vector<int32_t> HfTinyPrompt(const std::string& fixture, int64_t length) {
  auto file = SafetensorsFile::Open(HfTinyDir(fixture) + "/reference.safetensors");
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return {};
  auto ids = ReadInt64(**file, "input_ids.200");
  EXPECT_TRUE(ids.ok()) << ids.status();
  if (!ids.ok()) return {};
  return std::vector<int32_t>(ids->begin(), ids->begin() + length);
}

// INSTANTIATE_TEST_SUITE_P(P, T, HfTinyFamilies(), HfTinyTestName).
inline auto HfTinyFamilies() {
  return ::testing::Values("mamba2-tiny", "bamba-tiny", "nemotronh-tiny", "nemotronh-moe-tiny", "granitemoe-tiny");
}
inline std::string HfTinyTestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& ch : name) ch = ch == '-' ? '_' : ch;
  return name;
}

}  // namespace tessera::testing
