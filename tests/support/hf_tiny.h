// The Hugging Face fixtures (tests/data/hf-tiny) as the tests that run every
// family name and read them: their directories, a reference prompt, the
// bf16 bounds of the GPU tests, and the five families as a parameter list
// with readable test names.
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

// bf16 bounds per fixture. Against the fp32 references: issue 13's 3e-2, except
// where a plain bf16 implementation cannot meet it itself; there, 2x that
// implementation's error (the bar for kernels). Between two bf16 runs
// of one engine (W shards, prompt pieces vs one pass): 2e-2, a little under
// the bound against the references since both runs round the same weights;
// where bf16 itself flips routing decisions, the bound against the
// references: which few tokens flip differs from run to run (pieces of 7
// measured 5.5e-2 and 7.0e-2, worst row 0.82, on two builds).
// The plain implementation is transformers 5.17 in bfloat16 on an H200
// (scripts/hf_bf16_baseline.py, 2026-12-04, bench/RESULTS.md), prompt rel L2
// at lengths 77 / 200: mamba2-tiny 2.24e-2 / 2.33e-2, bamba-tiny 3.24e-2 /
// 2.91e-2, nemotronh-tiny 2.24e-2 / 2.29e-2, granitemoe-tiny 8.9e-3 / 1.32e-2,
// nemotronh-moe-tiny 4.59e-2 / 6.13e-2 (worst rows 0.34 / 0.55: its routers'
// top-k margins are 4e-4 ... 3e-3, below bf16's rounding of the hidden state,
// so bf16 flips experts for a few tokens). Only nemotronh-moe-tiny is over
// 3e-2 at every length.
struct HfTinyBf16Bound {
  double vs_reference;
  double between_runs;
};

inline HfTinyBf16Bound HfTinyBf16Bounds(const std::string& fixture) {
  if (fixture == "nemotronh-moe-tiny") return {2 * 6.13e-2, 2 * 6.13e-2};
  return {3e-2, 2e-2};
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
