// Where the tokenizer tests find their fixtures: TESSERA_TEST_DATA_DIR (a
// compile definition from CMake) + tokenizers/<name>/.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include "nlohmann/json.hpp"

namespace tessera::testing {

inline std::string TokenizerDataDir(const std::string& name) {
  return std::string(TESSERA_TEST_DATA_DIR) + "/tokenizers/" + name;
}

inline std::string TokenizerJsonPath(const std::string& name) { return TokenizerDataDir(name) + "/tokenizer.json"; }

inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

inline nlohmann::json ReadJson(const std::string& path) { return nlohmann::json::parse(ReadFileOrEmpty(path)); }

}  // namespace tessera::testing
