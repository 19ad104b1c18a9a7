// Bare non-finite literals are rewritten to transformers 5's
// {"__float__": "..."} before parsing, outside strings only; a parse error's
// column is mapped back to the file as written.
#include "model/config_json.h"

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tessera {
namespace {

constexpr absl::string_view kLiterals[] = {"-Infinity", "Infinity", "NaN"};

bool IsIdentifierChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

struct Rewritten {
  std::string text;
  // (offset in `text` just past a replacement, cumulative growth up to there)
  std::vector<std::pair<size_t, int64_t>> growth;
};

Rewritten RewriteNonFiniteLiterals(absl::string_view in) {
  Rewritten out;
  out.text.reserve(in.size());
  bool in_string = false;
  int64_t grown = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (in_string) {
      out.text.push_back(c);
      if (c == '\\' && i + 1 < in.size()) {
        out.text.push_back(in[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out.text.push_back(c);
      continue;
    }
    bool replaced = false;
    if (i == 0 || !IsIdentifierChar(in[i - 1])) {
      for (absl::string_view literal : kLiterals) {
        const size_t end = i + literal.size();
        if (in.substr(i, literal.size()) == literal && (end == in.size() || !IsIdentifierChar(in[end]))) {
          const std::string replacement = absl::StrCat("{\"__float__\": \"", literal, "\"}");
          out.text += replacement;
          grown += static_cast<int64_t>(replacement.size()) - static_cast<int64_t>(literal.size());
          out.growth.emplace_back(out.text.size(), grown);
          i = end - 1;
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out.text.push_back(c);
  }
  return out;
}

// Line and column (1-based) in the original text of byte `offset` (0-based)
// of the rewritten one.
std::pair<int64_t, int64_t> OriginalPosition(const Rewritten& r, absl::string_view original, size_t offset) {
  int64_t grown = 0;
  for (const auto& [end, total] : r.growth) {
    if (end <= offset) grown = total;
  }
  const size_t at = std::min(original.size(), static_cast<size_t>(std::max<int64_t>(0, offset - grown)));
  int64_t line = 1, column = 1;
  for (size_t i = 0; i < at; ++i) {
    if (original[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

}  // namespace

absl::StatusOr<Json> ParseConfigJson(absl::string_view text, absl::string_view source) {
  const Rewritten rewritten = RewriteNonFiniteLiterals(text);
  try {
    return Json::parse(rewritten.text);
  } catch (const Json::parse_error& e) {
    // e.byte is 1-based and points just past the offending character.
    const auto [line, column] = OriginalPosition(rewritten, text, e.byte > 0 ? e.byte - 1 : 0);
    std::string cause = e.what();
    if (const size_t colon = cause.find(": "); colon != std::string::npos) cause = cause.substr(colon + 2);
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not valid JSON at line ", line, ", column ", column, ": ", cause));
  } catch (const Json::exception& e) {  // e.g. a number out of range ("1e405"), found by tests/fuzz/model_fuzzer
    std::string cause = e.what();
    if (const size_t bracket = cause.find("] "); bracket != std::string::npos) cause = cause.substr(bracket + 2);
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON: ", cause));
  }
}

const Json* ConfigReader::Find(Keys keys) const {
  for (absl::string_view key : keys) read_->insert(std::string(key));
  if (!json_.is_object()) return nullptr;
  for (absl::string_view key : keys) {
    auto it = json_.find(std::string(key));
    if (it != json_.end() && !it->is_null()) return &*it;
  }
  return nullptr;
}

absl::Status ConfigReader::Error(Keys keys, absl::string_view what) const {
  return absl::InvalidArgumentError(absl::StrCat(source_, ": key '", prefix_, *keys.begin(), "' ", what));
}

absl::StatusOr<int64_t> ConfigReader::Int(Keys keys) const {
  const Json* v = Find(keys);
  if (v == nullptr) return Error(keys, "is missing");
  if (!v->is_number_integer()) return Error(keys, absl::StrCat("must be an integer, got ", v->dump()));
  return v->get<int64_t>();
}

absl::StatusOr<int64_t> ConfigReader::PositiveInt(Keys keys) const {
  ASSIGN_OR_RETURN(int64_t value, Int(keys));
  if (value <= 0) return Error(keys, absl::StrCat("must be > 0. Given: ", value));
  if (value > kMaxDimension) {
    return Error(keys, absl::StrCat("must be <= ", kMaxDimension, " (no model has more). Given: ", value));
  }
  return value;
}

absl::StatusOr<int64_t> ConfigReader::PositiveIntOr(Keys keys, int64_t fallback) const {
  if (Find(keys) == nullptr) return fallback;
  return PositiveInt(keys);
}

absl::StatusOr<int64_t> ConfigReader::NonNegativeIntOr(Keys keys, int64_t fallback) const {
  if (Find(keys) == nullptr) return fallback;
  ASSIGN_OR_RETURN(int64_t value, Int(keys));
  if (value < 0) return Error(keys, absl::StrCat("must be >= 0. Given: ", value));
  if (value > kMaxDimension) {
    return Error(keys, absl::StrCat("must be <= ", kMaxDimension, " (no model has more). Given: ", value));
  }
  return value;
}

absl::StatusOr<double> ConfigReader::Float(Keys keys) const {
  const Json* v = Find(keys);
  if (v == nullptr) return Error(keys, "is missing");
  return FloatValue(*v, keys);
}

absl::StatusOr<double> ConfigReader::FloatOr(Keys keys, double fallback) const {
  if (Find(keys) == nullptr) return fallback;
  return Float(keys);
}

absl::StatusOr<bool> ConfigReader::BoolOr(Keys keys, bool fallback) const {
  const Json* v = Find(keys);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return Error(keys, absl::StrCat("must be true or false, got ", v->dump()));
  return v->get<bool>();
}

absl::StatusOr<std::string> ConfigReader::StringOr(Keys keys, std::string fallback) const {
  const Json* v = Find(keys);
  if (v == nullptr) return fallback;
  if (!v->is_string()) return Error(keys, absl::StrCat("must be a string, got ", v->dump()));
  return v->get<std::string>();
}

absl::StatusOr<double> ConfigReader::FloatValue(const Json& v, Keys keys) const {
  if (v.is_number()) return v.get<double>();
  if (v.is_object() && v.size() == 1 && v.contains("__float__") && v["__float__"].is_string()) {
    const std::string s = v["__float__"].get<std::string>();
    if (s == "Infinity" || s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity" || s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "NaN" || s == "nan") return std::numeric_limits<double>::quiet_NaN();
  }
  return Error(keys, absl::StrCat("must be a number, got ", v.dump()));
}

ConfigReader ConfigReader::Nested(Keys keys) const {
  static const Json* const kEmpty = new Json(Json::object());
  const Json* v = Find(keys);
  const Json& object = v != nullptr && v->is_object() ? *v : *kEmpty;
  return ConfigReader(object, source_, absl::StrCat(prefix_, *keys.begin(), "."),
                      std::make_shared<std::set<std::string>>());
}

std::set<std::string> ConfigReader::UnreadKeys() const {
  std::set<std::string> unread;
  if (!json_.is_object()) return unread;
  for (auto it = json_.begin(); it != json_.end(); ++it) {
    if (read_->count(it.key()) == 0) unread.insert(it.key());
  }
  return unread;
}

}  // namespace tessera
