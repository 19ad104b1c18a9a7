// tokenizer.json -> TokenizerSpec with nlohmann::json. Exceptions stop here:
// parsing is non-throwing and every access checks the type first; a final
// catch turns anything missed into a status.
#include "coordinator/tokenizer/tokenizer_spec.h"

#include <algorithm>
#include <limits>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/tokenizer/absl_view.h"
#include "coordinator/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace tessera {
namespace {

using Json = nlohmann::json;

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

// The component's "type" (or "none" for null), for messages and dispatch.
std::string TypeOf(const Json& component) {
  if (component.is_null()) return "none";
  if (!component.is_object()) return absl::StrCat("<", component.type_name(), ">");
  const auto it = component.find("type");
  if (it == component.end() || !it->is_string()) return "<no type>";
  return it->get<std::string>();
}

absl::StatusOr<bool> GetBool(const Json& object, std::string_view key, bool fallback, absl::string_view where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return Invalid(absl::StrCat(where, ".", AbslView(key), " must be a boolean"));
  return it->get<bool>();
}

absl::StatusOr<int32_t> GetId(const Json& value, absl::string_view where) {
  if (!value.is_number_integer()) return Invalid(absl::StrCat(where, " must be an integer id"));
  const int64_t id = value.is_number_unsigned()
                         ? static_cast<int64_t>(std::min<uint64_t>(value.get<uint64_t>(), 1ull << 40))
                         : value.get<int64_t>();
  if (id < 0 || id >= std::numeric_limits<int32_t>::max()) {
    return Invalid(absl::StrCat(where, " must be in [0, 2^31-1). Given: ", id));
  }
  return static_cast<int32_t>(id);
}

absl::StatusOr<std::string> GetString(const Json& object, std::string_view key, absl::string_view where) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string())
    return Invalid(absl::StrCat(where, ".", AbslView(key), " must be a string"));
  return it->get<std::string>();
}

absl::Status Unsupported(absl::string_view path, absl::string_view type) {
  return Invalid(absl::StrCat(path, ".type '", type, "' is not supported"));
}

// A string field that must hold exactly one character (serde's char).
absl::StatusOr<std::string> GetCharacter(const Json& object, std::string_view key, absl::string_view where) {
  ASSIGN_OR_RETURN(std::string value, GetString(object, key, where));
  if (value.empty() || Utf8SequenceLength(value, 0) != value.size()) {
    return Invalid(absl::StrCat(where, ".", AbslView(key), " must be one character. Given: '", value, "'"));
  }
  return value;
}

absl::StatusOr<size_t> GetCount(const Json& object, std::string_view key, absl::string_view where) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_number_unsigned()) {
    return Invalid(absl::StrCat(where, ".", AbslView(key), " must be a non-negative integer"));
  }
  return static_cast<size_t>(std::min<uint64_t>(it->get<uint64_t>(), 1u << 30));
}

// {"Regex": ...} or {"String": ...}, as Split and Replace spell patterns.
absl::Status ParsePattern(const Json& object, absl::string_view where, std::string* pattern, bool* literal) {
  const auto it = object.find("pattern");
  if (it != object.end() && it->is_object() && it->size() == 1) {
    for (const char* kind : {"Regex", "String"}) {
      if (const auto p = it->find(kind); p != it->end() && p->is_string()) {
        *pattern = p->get<std::string>();
        *literal = std::string_view(kind) == "String";
        return absl::OkStatus();
      }
    }
  }
  return Invalid(absl::StrCat(where, ".pattern must be {\"Regex\": ...} or {\"String\": ...}"));
}

// The Metaspace fields shared by the pre-tokenizer and the decoder, with
// tokenizers' defaults and its legacy add_prefix_space.
struct MetaspaceConfig {
  std::string replacement;
  MetaspacePrepend prepend = MetaspacePrepend::kAlways;
  bool split = true;
};

absl::StatusOr<MetaspaceConfig> ParseMetaspace(const Json& component, absl::string_view where) {
  MetaspaceConfig config;
  ASSIGN_OR_RETURN(config.replacement, GetCharacter(component, "replacement", where));
  if (const auto it = component.find("prepend_scheme"); it != component.end() && !it->is_null()) {
    const std::string scheme = it->is_string() ? it->get<std::string>() : it->dump();
    if (scheme == "first") {
      config.prepend = MetaspacePrepend::kFirst;
    } else if (scheme == "never") {
      config.prepend = MetaspacePrepend::kNever;
    } else if (scheme != "always") {
      return Invalid(
          absl::StrCat(where, ".prepend_scheme must be 'first', 'always' or 'never'. Given: '", scheme, "'"));
    }
  }
  if (const auto it = component.find("add_prefix_space"); it != component.end() && !it->is_null()) {
    if (!it->is_boolean()) return Invalid(absl::StrCat(where, ".add_prefix_space must be a boolean"));
    if (!it->get<bool>() && config.prepend != MetaspacePrepend::kNever) {  // tokenizers refuses it too
      return Invalid(absl::StrCat(where, ".add_prefix_space false does not match prepend_scheme"));
    }
  }
  ASSIGN_OR_RETURN(config.split, GetBool(component, "split", true, where));
  return config;
}

absl::Status ParseModel(const Json& model, BpeConfig* bpe) {
  if (!model.is_object()) return Invalid("tokenizer.json has no model object");
  const std::string type = TypeOf(model);
  // Old files omit the type; a model with merges is BPE there.
  if (type != "BPE" && !(type == "<no type>" && model.contains("merges"))) {
    return Invalid(absl::StrCat("model.type '", type, "' is not supported (only BPE)"));
  }
  if (const auto it = model.find("dropout"); it != model.end() && !it->is_null()) {
    if (!it->is_number() || it->get<double>() != 0.0) return Invalid("unsupported BPE dropout (must be null or 0)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto it = model.find(key);
    if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty())) {
      return Invalid(absl::StrCat("unsupported BPE ", key));
    }
  }
  ASSIGN_OR_RETURN(bpe->fuse_unk, GetBool(model, "fuse_unk", false, "model"));
  ASSIGN_OR_RETURN(bpe->byte_fallback, GetBool(model, "byte_fallback", false, "model"));
  ASSIGN_OR_RETURN(bpe->ignore_merges, GetBool(model, "ignore_merges", false, "model"));
  if (const auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
    if (!it->is_string()) return Invalid("model.unk_token must be a string or null");
    bpe->unk_token = it->get<std::string>();
  }

  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) return Invalid("model.vocab must be an object");
  absl::flat_hash_map<int32_t, std::string> owner;
  owner.reserve(vocab->size());
  bpe->vocab.reserve(vocab->size());
  for (const auto& [token, value] : vocab->items()) {
    ASSIGN_OR_RETURN(const int32_t id, GetId(value, absl::StrCat("model.vocab['", token, "']")));
    const auto [it, inserted] = owner.emplace(id, token);
    if (!inserted)
      return Invalid(absl::StrCat("vocab id ", id, " is given to both '", it->second, "' and '", token, "'"));
    bpe->vocab.emplace_back(token, id);
  }

  const auto merges = model.find("merges");
  if (merges == model.end() || merges->is_null()) return absl::OkStatus();
  if (!merges->is_array()) return Invalid("model.merges must be an array");
  bpe->merges.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& merge = (*merges)[i];
    if (merge.is_string()) {  // "left right"
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        return Invalid(
            absl::StrCat("model.merges[", i, "] must be two tokens separated by one space. Given: '", text, "'"));
      }
      bpe->merges.emplace_back(text.substr(0, space), text.substr(space + 1));
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      bpe->merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    } else {
      return Invalid(absl::StrCat("model.merges[", i, "] must be \"a b\" or [\"a\", \"b\"]"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseAddedTokens(const Json& root, const BpeConfig& bpe, std::vector<AddedToken>* out) {
  const auto list = root.find("added_tokens");
  if (list == root.end() || list->is_null()) return absl::OkStatus();
  if (!list->is_array()) return Invalid("added_tokens must be an array");
  absl::flat_hash_map<std::string, int32_t> vocab_ids;
  absl::flat_hash_map<int32_t, std::string> vocab_tokens;
  for (const auto& [token, id] : bpe.vocab) {
    vocab_ids.emplace(token, id);
    vocab_tokens.emplace(id, token);
  }
  absl::flat_hash_map<std::string, size_t> seen;  // content -> index in out
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& entry = (*list)[i];
    const std::string where = absl::StrCat("added_tokens[", i, "]");
    if (!entry.is_object()) return Invalid(absl::StrCat(where, " must be an object"));
    AddedToken token;
    ASSIGN_OR_RETURN(token.content, GetString(entry, "content", where));
    if (token.content.empty()) continue;  // HF ignores empty tokens
    const auto id = entry.find("id");
    if (id == entry.end()) return Invalid(absl::StrCat(where, ".id is missing"));
    ASSIGN_OR_RETURN(token.id, GetId(*id, absl::StrCat(where, ".id")));
    ASSIGN_OR_RETURN(token.single_word, GetBool(entry, "single_word", false, where));
    ASSIGN_OR_RETURN(token.lstrip, GetBool(entry, "lstrip", false, where));
    ASSIGN_OR_RETURN(token.rstrip, GetBool(entry, "rstrip", false, where));
    ASSIGN_OR_RETURN(token.special, GetBool(entry, "special", false, where));
    ASSIGN_OR_RETURN(token.normalized, GetBool(entry, "normalized", !token.special, where));
    // Like HF, a token the model already knows keeps the model's id.
    if (const auto known = vocab_ids.find(token.content); known != vocab_ids.end()) {
      token.id = known->second;
    } else if (const auto taken = vocab_tokens.find(token.id); taken != vocab_tokens.end()) {
      return Invalid(absl::StrCat(where, " '", token.content, "' has id ", token.id, ", which the vocab gives to '",
                                  taken->second, "'"));
    }
    if (const auto dup = seen.find(token.content); dup != seen.end()) {
      (*out)[dup->second] = token;  // a later entry for the same content wins
      continue;
    }
    seen.emplace(token.content, out->size());
    out->push_back(std::move(token));
  }
  absl::flat_hash_map<int32_t, std::string> by_id;
  for (const AddedToken& token : *out) {
    const auto [it, inserted] = by_id.emplace(token.id, token.content);
    if (!inserted) {
      return Invalid(absl::StrCat("added tokens '", it->second, "' and '", token.content, "' share id ", token.id));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseNormalizer(const Json& component, const std::string& path, int depth,
                            std::vector<NormalizerStep>* steps) {
  if (depth > 8) return Invalid(absl::StrCat(path, ": Sequences nest too deeply"));
  const std::string type = TypeOf(component);
  if (type == "none" && depth == 0) return absl::OkStatus();
  if (type == "Sequence") {
    const auto list = component.find("normalizers");
    if (list == component.end() || !list->is_array()) {
      return Invalid(absl::StrCat(path, ".normalizers must be an array"));
    }
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(ParseNormalizer((*list)[i], absl::StrCat(path, ".normalizers[", i, "]"), depth + 1, steps));
    }
    return absl::OkStatus();
  }
  NormalizerStep step;
  step.path = path;
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step.kind = NormalizerStep::Kind::kUnicode;
    step.form = type == "NFC"   ? UnicodeForm::kNfc
                : type == "NFD" ? UnicodeForm::kNfd
                : type == "NFKC" ? UnicodeForm::kNfkc
                                 : UnicodeForm::kNfkd;
  } else if (type == "Lowercase") {
    step.kind = NormalizerStep::Kind::kLowercase;
  } else if (type == "Strip") {
    step.kind = NormalizerStep::Kind::kStrip;
    ASSIGN_OR_RETURN(step.strip_left, GetBool(component, "strip_left", false, path));
    ASSIGN_OR_RETURN(step.strip_right, GetBool(component, "strip_right", false, path));
  } else if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::kPrepend;
    ASSIGN_OR_RETURN(step.content, GetString(component, "prepend", path));
  } else if (type == "Replace") {
    step.kind = NormalizerStep::Kind::kReplace;
    RETURN_IF_ERROR(ParsePattern(component, path, &step.pattern, &step.pattern_is_literal));
    ASSIGN_OR_RETURN(step.content, GetString(component, "content", path));
  } else {
    return Unsupported(path, type);
  }
  steps->push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status ParsePreTokenizer(const Json& component, const std::string& path, int depth,
                               std::vector<PreTokenizerStep>* steps) {
  if (depth > 8) return Invalid(absl::StrCat(path, ": Sequences nest too deeply"));
  const std::string type = TypeOf(component);
  if (type == "none" && depth == 0) return absl::OkStatus();
  if (type == "Sequence") {
    const auto list = component.find("pretokenizers");
    if (list == component.end() || !list->is_array()) {
      return Invalid(absl::StrCat(path, ".pretokenizers must be an array"));
    }
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(ParsePreTokenizer((*list)[i], absl::StrCat(path, ".pretokenizers[", i, "]"), depth + 1, steps));
    }
    return absl::OkStatus();
  }
  PreTokenizerStep step;
  step.path = path;
  if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    ASSIGN_OR_RETURN(step.add_prefix_space, GetBool(component, "add_prefix_space", true, path));
    ASSIGN_OR_RETURN(step.use_regex, GetBool(component, "use_regex", true, path));
  } else if (type == "Split") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    RETURN_IF_ERROR(ParsePattern(component, path, &step.pattern, &step.pattern_is_literal));
    ASSIGN_OR_RETURN(const std::string behavior, GetString(component, "behavior", path));
    if (behavior == "Removed") {
      step.behavior = SplitBehavior::kRemoved;
    } else if (behavior == "Isolated") {
      step.behavior = SplitBehavior::kIsolated;
    } else if (behavior == "MergedWithPrevious") {
      step.behavior = SplitBehavior::kMergedWithPrevious;
    } else if (behavior == "MergedWithNext") {
      step.behavior = SplitBehavior::kMergedWithNext;
    } else if (behavior == "Contiguous") {
      step.behavior = SplitBehavior::kContiguous;
    } else {
      return Invalid(absl::StrCat(path, ".behavior '", behavior, "' is not supported"));
    }
    ASSIGN_OR_RETURN(step.invert, GetBool(component, "invert", false, path));
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::Kind::kMetaspace;
    ASSIGN_OR_RETURN(MetaspaceConfig metaspace, ParseMetaspace(component, path));
    step.replacement = std::move(metaspace.replacement);
    step.prepend = metaspace.prepend;
    step.split = metaspace.split;
  } else {
    return Unsupported(path, type);
  }
  steps->push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status ParseDecoder(const Json& component, const std::string& path, int depth, std::vector<DecoderStep>* steps) {
  if (depth > 8) return Invalid(absl::StrCat(path, ": Sequences nest too deeply"));
  const std::string type = TypeOf(component);
  if (type == "none" && depth == 0) {
    return Invalid("decoder null (tokens joined with spaces) is not supported");
  }
  if (type == "Sequence") {
    const auto list = component.find("decoders");
    if (list == component.end() || !list->is_array()) return Invalid(absl::StrCat(path, ".decoders must be an array"));
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(ParseDecoder((*list)[i], absl::StrCat(path, ".decoders[", i, "]"), depth + 1, steps));
    }
    return absl::OkStatus();
  }
  DecoderStep step;
  step.path = path;
  if (type == "ByteLevel") {
    step.kind = DecoderStep::Kind::kByteLevel;
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::kStrip;
    ASSIGN_OR_RETURN(step.content, GetCharacter(component, "content", path));
    ASSIGN_OR_RETURN(step.start, GetCount(component, "start", path));
    ASSIGN_OR_RETURN(step.stop, GetCount(component, "stop", path));
  } else if (type == "Replace") {
    step.kind = DecoderStep::Kind::kReplace;
    RETURN_IF_ERROR(ParsePattern(component, path, &step.pattern, &step.pattern_is_literal));
    ASSIGN_OR_RETURN(step.content, GetString(component, "content", path));
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::kMetaspace;
    ASSIGN_OR_RETURN(MetaspaceConfig metaspace, ParseMetaspace(component, path));
    step.content = std::move(metaspace.replacement);
    step.prepend_never = metaspace.prepend == MetaspacePrepend::kNever;
  } else {
    return Unsupported(path, type);
  }
  steps->push_back(std::move(step));
  return absl::OkStatus();
}

// Applies one post-processor to the (prefix, suffix) built so far.
absl::Status ParsePostProcessor(const Json& component, const std::string& path, int depth,
                                std::vector<int32_t>* prefix, std::vector<int32_t>* suffix) {
  if (depth > 8) return Invalid(absl::StrCat(path, ": Sequences nest too deeply"));
  const std::string type = TypeOf(component);
  if (type == "none" || type == "ByteLevel") return absl::OkStatus();  // ByteLevel only trims offsets
  if (type == "Sequence") {
    const auto list = component.find("processors");
    if (list == component.end() || !list->is_array()) {
      return Invalid(absl::StrCat(path, ".processors must be an array"));
    }
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(
          ParsePostProcessor((*list)[i], absl::StrCat(path, ".processors[", i, "]"), depth + 1, prefix, suffix));
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") return Unsupported(path, type);

  const auto single = component.find("single");
  const auto specials = component.find("special_tokens");
  if (single == component.end() || !single->is_array()) return Invalid("TemplateProcessing.single must be an array");
  std::vector<int32_t> before, after;
  int sequences = 0;
  for (const Json& piece : *single) {
    if (!piece.is_object() || piece.size() != 1) return Invalid("TemplateProcessing.single has a malformed piece");
    if (const auto seq = piece.find("Sequence"); seq != piece.end()) {
      if (!seq->is_object() || seq->value("id", Json()) != Json("A")) {
        return Invalid("unsupported TemplateProcessing single template: its sequence must be $A");
      }
      ++sequences;
      continue;
    }
    const auto special = piece.find("SpecialToken");
    if (special == piece.end() || !special->is_object())
      return Invalid("TemplateProcessing.single has an unknown piece");
    ASSIGN_OR_RETURN(const std::string name, GetString(*special, "id", "TemplateProcessing SpecialToken"));
    if (specials == component.end() || !specials->is_object() || !specials->contains(name)) {
      return Invalid(absl::StrCat("TemplateProcessing uses '", name, "', missing from special_tokens"));
    }
    const Json& entry = (*specials)[name];
    const auto ids = entry.is_object() ? entry.find("ids") : entry.end();
    if (!entry.is_object() || ids == entry.end() || !ids->is_array()) {
      return Invalid(absl::StrCat("TemplateProcessing special_tokens['", name, "'].ids must be an array"));
    }
    for (const Json& id : *ids) {
      ASSIGN_OR_RETURN(const int32_t value, GetId(id, absl::StrCat("special_tokens['", name, "'].ids")));
      (sequences == 0 ? before : after).push_back(value);
    }
  }
  if (sequences != 1) return Invalid("unsupported TemplateProcessing single template: it must contain $A once");
  prefix->insert(prefix->begin(), before.begin(), before.end());
  suffix->insert(suffix->end(), after.begin(), after.end());
  return absl::OkStatus();
}

absl::StatusOr<TokenizerSpec> ParseJson(const Json& root) {
  if (!root.is_object()) return Invalid("tokenizer.json must be a JSON object");
  for (const char* key : {"truncation", "padding"}) {
    const auto it = root.find(key);
    if (it != root.end() && !it->is_null()) return Invalid(absl::StrCat("unsupported ", key, " (must be null)"));
  }
  TokenizerSpec spec;
  const auto model = root.find("model");
  if (model == root.end()) return Invalid("tokenizer.json has no model");
  RETURN_IF_ERROR(ParseModel(*model, &spec.bpe));
  RETURN_IF_ERROR(ParseAddedTokens(root, spec.bpe, &spec.added_tokens));
  RETURN_IF_ERROR(ParseNormalizer(root.value("normalizer", Json()), "normalizer", 0, &spec.normalizer));
  RETURN_IF_ERROR(ParsePreTokenizer(root.value("pre_tokenizer", Json()), "pre_tokenizer", 0, &spec.pre_tokenizer));
  RETURN_IF_ERROR(ParsePostProcessor(root.value("post_processor", Json()), "post_processor", 0, &spec.special_prefix,
                                     &spec.special_suffix));
  RETURN_IF_ERROR(ParseDecoder(root.value("decoder", Json()), "decoder", 0, &spec.decoder));
  return spec;
}

}  // namespace

absl::StatusOr<TokenizerSpec> ParseTokenizerSpec(std::string_view json) {
  try {
    const Json root = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
    if (root.is_discarded()) return Invalid("tokenizer.json is not valid JSON");
    return ParseJson(root);
  } catch (const std::exception& e) {  // nlohmann::json::exception or bad_alloc
    return Invalid(absl::StrCat("tokenizer.json could not be read: ", e.what()));
  }
}

}  // namespace tessera
