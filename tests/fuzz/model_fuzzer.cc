// libFuzzer target for what `tessera inspect` and every worker read from a
// model directory before any tensor data. The first input byte picks a mode:
//   0: the rest is config.json: ParseModelConfig must return a status (bare
//      Infinity, aliases, every family), never crash or hang; a config it
//      accepts must give a layer pattern of num_layers characters, a weight
//      layout (ExpectedTensors) of non-negative shapes, and a context limit.
//   1: the rest is a safetensors file: Open must return a status; a file it
//      accepts must have every listed tensor's bytes inside the data section.
//   2: the rest is "config.json\0model.safetensors": a whole directory through
//      InspectModel, the code behind `tessera inspect`.
// Invariant violations __builtin_trap() so libFuzzer records them.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>

#include "model/context_limit.h"
#include "model/inspection.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "model/safetensors.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// A scratch directory of this process, reused by every input.
const std::string& ScratchDir() {
  static const std::string dir = [] {
    char pattern[] = "/tmp/tessera-model-fuzz-XXXXXX";
    const char* made = mkdtemp(pattern);
    return std::string(made != nullptr ? made : "/tmp");
  }();
  return dir;
}

void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void FuzzConfig(std::string_view text) {
  absl::StatusOr<tessera::ModelConfig> config = tessera::ParseModelConfig(absl::string_view(text.data(), text.size()), "config.json");
  if (!config.ok()) return;
  Check(config->num_layers > 0);
  Check(static_cast<int64_t>(config->LayerPattern().size()) == config->num_layers);
  for (const tessera::TensorSpec& spec : tessera::ExpectedTensors(*config)) {
    Check(!spec.name.empty());
    for (int64_t d : spec.shape) Check(d >= 0);
  }
  absl::StatusOr<tessera::ContextLimit> limit = tessera::ResolveContextLimit(*config, 1 << 20);
  Check(limit.ok() && limit->served_tokens == (1 << 20));
  (void)tessera::CheckServed(*config);
}

void FuzzSafetensors(std::string_view bytes) {
  const std::string path = ScratchDir() + "/fuzz.safetensors";
  WriteFile(path, bytes);
  absl::StatusOr<std::unique_ptr<tessera::SafetensorsFile>> file = tessera::SafetensorsFile::Open(path);
  if (!file.ok()) return;
  for (const std::string& name : (*file)->TensorNames()) {
    const tessera::TensorInfo* info = (*file)->Find(name);
    Check(info != nullptr && info->data_begin <= info->data_end && info->data_end <= (*file)->data_size());
  }
}

void FuzzDirectory(std::string_view input) {
  const size_t nul = input.find('\0');
  const std::string dir = ScratchDir();
  WriteFile(dir + "/config.json", input.substr(0, nul));
  if (nul != std::string_view::npos) {
    WriteFile(dir + "/model.safetensors", input.substr(nul + 1));
  } else {
    std::remove((dir + "/model.safetensors").c_str());
  }
  (void)tessera::InspectModel(dir);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1 << 20)) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      FuzzConfig(rest);
      break;
    case 1:
      FuzzSafetensors(rest);
      break;
    case 2:
      FuzzDirectory(rest);
      break;
  }
  return 0;
}
