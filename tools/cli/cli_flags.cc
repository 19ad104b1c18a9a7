// A small flag parser for subcommands; errors name the flag and its value.
#include "tools/cli/cli_flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tessera {

absl::StatusOr<CliFlags> CliFlags::Parse(int argc, char** argv, absl::Span<const FlagSpec> specs) {
  CliFlags flags;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      flags.help_ = true;
      continue;
    }
    if (arg.substr(0, 2) != "--") return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    arg.remove_prefix(2);
    absl::string_view name = arg.substr(0, arg.find('='));
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    std::string value = "true";
    if (arg.size() > name.size()) {
      value = std::string(arg.substr(name.size() + 1));
    } else if (spec->takes_value) {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      value = argv[++i];
    }
    flags.all_values_[std::string(name)].push_back(value);
    flags.values_[std::string(name)] = std::move(value);
  }
  return flags;
}

std::vector<std::string> CliFlags::GetAll(absl::string_view name) const {
  auto it = all_values_.find(name);
  return it == all_values_.end() ? std::vector<std::string>() : it->second;
}

bool CliFlags::Has(absl::string_view name) const { return values_.find(name) != values_.end(); }

std::string CliFlags::GetString(absl::string_view name, absl::string_view fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::string(fallback) : it->second;
}

absl::StatusOr<std::string> CliFlags::RequireString(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
  return it->second;
}

absl::StatusOr<int64_t> CliFlags::GetInt(absl::string_view name, int64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(it->second, &value)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be an integer. Given: '", it->second, "'"));
  }
  return value;
}

absl::StatusOr<double> CliFlags::GetDouble(absl::string_view name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  double value = 0;
  if (!absl::SimpleAtod(it->second, &value)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be a number. Given: '", it->second, "'"));
  }
  return value;
}

std::string FlagsUsage(absl::string_view command, absl::string_view summary, absl::Span<const FlagSpec> specs) {
  std::string out = absl::StrCat("usage: tessera ", command, " [flags]\n", summary, "\n\nflags:\n");
  for (const FlagSpec& s : specs) {
    absl::StrAppendFormat(&out, "  --%-18s %s\n", absl::StrCat(s.name, s.takes_value ? " X" : ""), s.help);
  }
  return out;
}

}  // namespace tessera
