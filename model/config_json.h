// config.json as the hub publishes it, which is not always JSON: files written
// by transformers 4.x carry bare `Infinity`, `-Infinity` and `NaN` (Python's
// json.dumps), e.g. "time_step_limit": [0.0, Infinity]. This reads them as
// numbers ({"__float__": ...} is transformers 5's spelling of the same), and
// says where and why a file that is not JSON fails: line, column and cause.
//
// ConfigReader looks keys up with their aliases and names the key in every
// error; it remembers which keys it was asked about, so a caller can list the
// keys of a file that nobody read.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tessera {

using Json = nlohmann::json;

// Parses `text` (the contents of `source`, named in errors), accepting bare
// Infinity, -Infinity and NaN outside strings, read back by ConfigReader as
// numbers. INVALID_ARGUMENT "<source>: not valid JSON at line L, column C: <cause>".
absl::StatusOr<Json> ParseConfigJson(absl::string_view text, absl::string_view source);

class ConfigReader {
 public:
  using Keys = std::initializer_list<absl::string_view>;
  // The largest size any integer key may give (vocab, widths, heads, experts):
  // a config asking for more is corrupt or hostile, and would make the
  // loader allocate without bound before any tensor is checked.
  static constexpr int64_t kMaxDimension = int64_t{1} << 24;

  // `json` must outlive the reader.
  ConfigReader(const Json& json, std::string source) : json_(json), source_(std::move(source)) {}

  // The first present, non-null alias, or null.
  const Json* Find(Keys keys) const;
  bool Has(Keys keys) const { return Find(keys) != nullptr; }

  // INVALID_ARGUMENT "<source>: key '<first key>' <what>".
  absl::Status Error(Keys keys, absl::string_view what) const;

  absl::StatusOr<int64_t> Int(Keys keys) const;
  absl::StatusOr<int64_t> PositiveInt(Keys keys) const;
  absl::StatusOr<int64_t> PositiveIntOr(Keys keys, int64_t fallback) const;
  absl::StatusOr<int64_t> NonNegativeIntOr(Keys keys, int64_t fallback) const;
  // A number (including Infinity/NaN in either spelling).
  absl::StatusOr<double> Float(Keys keys) const;
  absl::StatusOr<double> FloatOr(Keys keys, double fallback) const;
  absl::StatusOr<bool> BoolOr(Keys keys, bool fallback) const;
  absl::StatusOr<std::string> StringOr(Keys keys, std::string fallback) const;
  // `v` as a number, for list elements; `keys` names the list in errors.
  absl::StatusOr<double> FloatValue(const Json& v, Keys keys) const;

  // A reader of the object at `keys` (an empty object when absent or null);
  // errors then name "<key>.<inner key>".
  ConfigReader Nested(Keys keys) const;

  const std::string& source() const { return source_; }
  // Every key of the object that no lookup asked for, sorted.
  std::set<std::string> UnreadKeys() const;

 private:
  ConfigReader(const Json& json, std::string source, std::string prefix,
               std::shared_ptr<std::set<std::string>> read)
      : json_(json), source_(std::move(source)), prefix_(std::move(prefix)), read_(std::move(read)) {}

  const Json& json_;
  std::string source_;
  std::string prefix_;  // "<key>." for a nested object
  std::shared_ptr<std::set<std::string>> read_ = std::make_shared<std::set<std::string>>();
};

}  // namespace tessera
