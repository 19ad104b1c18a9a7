// Flags of one subcommand: "--name value", "--name=value" and boolean
// "--name". Each subcommand declares its flags, so a misspelt or foreign flag
// is an error that names it, and --help prints exactly what the command takes.
#pragma once

#include <map>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace tessera {

struct FlagSpec {
  absl::string_view name;   // without the leading "--"
  bool takes_value = true;
  absl::string_view help;
};

class CliFlags {
 public:
  // argv[0] is the subcommand name. "--help" sets help().
  static absl::StatusOr<CliFlags> Parse(int argc, char** argv, absl::Span<const FlagSpec> specs);

  bool help() const { return help_; }
  bool Has(absl::string_view name) const;
  // The last value given (flags given twice: the last wins)...
  std::string GetString(absl::string_view name, absl::string_view fallback) const;
  // ...or every value, in order (repeatable flags such as `generate --stop`).
  std::vector<std::string> GetAll(absl::string_view name) const;
  absl::StatusOr<std::string> RequireString(absl::string_view name) const;
  absl::StatusOr<int64_t> GetInt(absl::string_view name, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(absl::string_view name, double fallback) const;

 private:
  std::map<std::string, std::string, std::less<>> values_;
  std::map<std::string, std::vector<std::string>, std::less<>> all_values_;
  bool help_ = false;
};

std::string FlagsUsage(absl::string_view command, absl::string_view summary, absl::Span<const FlagSpec> specs);

}  // namespace tessera
