// Tokenizer: wires the spec's components together (see tokenizer.h).
#include "coordinator/tokenizer/tokenizer.h"

#include <algorithm>
#include <deque>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/tokenizer/absl_view.h"
#include "coordinator/tokenizer/added_tokens.h"
#include "coordinator/tokenizer/bpe_model.h"
#include "coordinator/tokenizer/decoder.h"
#include "coordinator/tokenizer/normalizer.h"
#include "coordinator/tokenizer/pre_tokenizer.h"
#include "coordinator/tokenizer/tokenizer_spec.h"
#include "coordinator/tokenizer/utf8.h"

namespace tessera {

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open tokenizer file '", path, "'"));
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat("cannot read tokenizer file '", path, "'"));
  auto tokenizer = FromJson(contents.str());
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(), absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json) {
  ASSIGN_OR_RETURN(TokenizerSpec spec, ParseTokenizerSpec(json));
  auto tokenizer = std::unique_ptr<Tokenizer>(new Tokenizer());
  RETURN_IF_ERROR(tokenizer->Init(std::move(spec)));
  return tokenizer;
}

absl::Status Tokenizer::Init(TokenizerSpec spec) {
  ASSIGN_OR_RETURN(normalizer_, Normalizer::Create(spec.normalizer));
  ASSIGN_OR_RETURN(pre_tokenizer_, PreTokenizer::Create(spec.pre_tokenizer));
  ASSIGN_OR_RETURN(decoder_, Decoder::Create(spec.decoder));
  ASSIGN_OR_RETURN(model_, BpeModel::Create(spec.bpe, pre_tokenizer_->byte_level()));
  ASSIGN_OR_RETURN(added_tokens_,
                   AddedTokenMatcher::Create(spec.added_tokens, normalizer_->empty() ? nullptr : normalizer_.get()));
  special_prefix_ = std::move(spec.special_prefix);
  special_suffix_ = std::move(spec.special_suffix);

  for (const auto& [token, id] : spec.bpe.vocab) {
    entries_[id] = TokenEntry{token, false};
  }
  absl::flat_hash_map<std::string, bool> special_contents;
  for (const AddedToken& token : spec.added_tokens) {
    added_ids_[token.content] = token.id;
    // Like tokenizers 0.23 (earlier versions kept the content as written),
    // a normalized token reads back as its normalized content, in IdToToken
    // and in decoding.
    std::string content = token.content;
    if (token.normalized && !normalizer_->empty()) {
      size_t lead = 0;
      RETURN_IF_ERROR(normalizer_->Normalize(&content, &lead));
    }
    entries_[token.id] = TokenEntry{std::move(content), false};
    if (token.special) special_contents[token.content] = true;
  }
  // HF skips by content: any id whose token string is a special token
  // (compared with the normalized content, as tokenizers does).
  for (auto& [id, entry] : entries_) entry.special = special_contents.contains(entry.content);
  for (const auto& [id, entry] : entries_) vocab_size_ = std::max(vocab_size_, id + 1);
  for (int32_t id : special_prefix_) {
    if (!entries_.contains(id)) return absl::InvalidArgumentError(absl::StrCat("post_processor uses unknown id ", id));
  }
  for (int32_t id : special_suffix_) {
    if (!entries_.contains(id)) return absl::InvalidArgumentError(absl::StrCat("post_processor uses unknown id ", id));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  if (const size_t bad = Utf8FirstInvalid(text); bad != text.size()) {
    return absl::InvalidArgumentError(absl::StrCat("text is not valid UTF-8 (bad byte at offset ", bad, ")"));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + special_prefix_.size() + special_suffix_.size() + 1);
  if (add_special_tokens) ids.insert(ids.end(), special_prefix_.begin(), special_prefix_.end());
  std::deque<std::string> storage;
  std::vector<std::string_view> words;
  std::string normalized;
  for (const AddedTokenSplit& raw : added_tokens_->SplitRaw(text)) {
    if (raw.token_id.has_value()) {
      ids.push_back(*raw.token_id);
      continue;
    }
    // Bytes of the piece that stand for offset 0 of the input (Metaspace's
    // prepend_scheme "first" asks): the first character, when it is there.
    size_t lead = raw.text.data() == text.data() ? Utf8SequenceLength(raw.text, 0) : 0;
    std::string_view piece = raw.text;
    if (!normalizer_->empty()) {
      normalized.assign(piece);
      RETURN_IF_ERROR(normalizer_->Normalize(&normalized, &lead));
      piece = normalized;
    }
    for (const AddedTokenSplit& split : added_tokens_->SplitNormalized(piece)) {
      if (split.token_id.has_value()) {
        ids.push_back(*split.token_id);
        continue;
      }
      const size_t offset = static_cast<size_t>(split.text.data() - piece.data());
      const size_t split_lead = lead > offset ? std::min(lead, offset + split.text.size()) - offset : 0;
      words.clear();
      RETURN_IF_ERROR(pre_tokenizer_->Run(split.text, split_lead, &storage, &words));
      for (std::string_view word : words) model_->EncodeWord(word, &ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), special_suffix_.begin(), special_suffix_.end());
  return ids;
}

absl::StatusOr<std::optional<std::string_view>> Tokenizer::DecoderInput(int32_t id, bool skip_special_tokens) const {
  const auto it = entries_.find(id);
  if (it == entries_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " is not in the vocabulary (size ", vocab_size_, ")"));
  }
  if (skip_special_tokens && it->second.special) return std::nullopt;
  return std::string_view(it->second.content);
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  DecoderStream stream(decoder_.get());
  std::string text;
  text.reserve(ids.size() * 4);
  for (int32_t id : ids) {
    ASSIGN_OR_RETURN(const std::optional<std::string_view> token, DecoderInput(id, skip_special_tokens));
    if (token.has_value()) stream.Push(*token, &text);
  }
  stream.Finish(&text);
  return text;
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (const auto it = added_ids_.find(AbslView(token)); it != added_ids_.end()) return it->second;
  return model_->TokenToId(token);
}

std::optional<std::string_view> Tokenizer::IdToToken(int32_t id) const {
  const auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return std::string_view(it->second.content);
}

bool Tokenizer::IsSpecialToken(int32_t id) const {
  const auto it = entries_.find(id);
  return it != entries_.end() && it->second.special;
}

void Tokenizer::ClearCache() const { model_->ClearCache(); }

}  // namespace tessera
