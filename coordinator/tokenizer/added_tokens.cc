// Added-token splitting; mirrors AddedVocabulary::find_matches and
// extract_and_normalize of Hugging Face tokenizers.
#include "coordinator/tokenizer/added_tokens.h"

#include <algorithm>
#include <map>
#include <memory>

#include "common/status_macros.h"
#include "coordinator/tokenizer/pcre2_regex.h"
#include "coordinator/tokenizer/unicode.h"
#include "coordinator/tokenizer/utf8.h"

namespace tessera {
namespace {

// Rust regex \w, used by HF for single_word.
bool IsWordCharacter(std::string_view one_char) {
  static const Pcre2Regex* word = [] {
    auto regex = Pcre2Regex::Compile("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]", /*literal=*/false);
    return regex.ok() ? regex->release() : nullptr;
  }();
  if (word == nullptr) return false;
  std::vector<RegexMatch> matches;
  if (!word->FindAll(one_char, &matches).ok()) return false;
  return !matches.empty();
}

// Start of the trailing run of white space in `text`.
size_t TrailingSpaceStart(std::string_view text) {
  size_t pos = text.size();
  while (pos > 0) {
    size_t begin = pos - 1;
    while (begin > 0 && (static_cast<uint8_t>(text[begin]) & 0xC0) == 0x80) --begin;
    const size_t n = Utf8SequenceLength(text, begin);
    if (n == 0 || !UnicodeIsWhiteSpace(Utf8DecodeAt(text, begin, n))) break;
    pos = begin;
  }
  return pos;
}

// Length of the leading run of white space in `text`.
size_t LeadingSpaceLength(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t n = Utf8SequenceLength(text, pos);
    if (n == 0 || !UnicodeIsWhiteSpace(Utf8DecodeAt(text, pos, n))) break;
    pos += n;
  }
  return pos;
}

bool EndsWithWord(std::string_view text) {
  if (text.empty()) return false;
  size_t begin = text.size() - 1;
  while (begin > 0 && (static_cast<uint8_t>(text[begin]) & 0xC0) == 0x80) --begin;
  return IsWordCharacter(text.substr(begin));
}

bool StartsWithWord(std::string_view text) {
  if (text.empty()) return false;
  const size_t n = Utf8SequenceLength(text, 0);
  return IsWordCharacter(text.substr(0, n == 0 ? 1 : n));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AddedTokenMatcher>> AddedTokenMatcher::Create(const std::vector<AddedToken>& tokens,
                                                                               const Normalizer* normalizer) {
  auto matcher = std::unique_ptr<AddedTokenMatcher>(new AddedTokenMatcher());
  matcher->tokens_ = tokens;
  std::vector<std::pair<std::string, int32_t>> raw, normalized;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const AddedToken& token = tokens[i];
    std::string content = token.content;
    if (token.normalized && normalizer != nullptr) {
      size_t lead = 0;
      RETURN_IF_ERROR(normalizer->Normalize(&content, &lead));
    }
    if (content.empty()) continue;
    (token.normalized ? normalized : raw).emplace_back(std::move(content), static_cast<int32_t>(i));
  }
  matcher->raw_trie_ = BuildTrie(raw);
  matcher->normalized_trie_ = BuildTrie(normalized);
  return matcher;
}

AddedTokenMatcher::Trie AddedTokenMatcher::BuildTrie(const std::vector<std::pair<std::string, int32_t>>& patterns) {
  // Build with ordered maps, then flatten into sorted edge ranges.
  struct TempNode {
    std::map<uint8_t, int32_t> children;
    int32_t token = -1;
  };
  std::vector<TempNode> temp(1);
  for (const auto& [pattern, index] : patterns) {
    int32_t node = 0;
    for (char c : pattern) {
      const uint8_t b = static_cast<uint8_t>(c);
      auto it = temp[node].children.find(b);
      if (it == temp[node].children.end()) {
        temp.emplace_back();
        it = temp[node].children.emplace(b, static_cast<int32_t>(temp.size() - 1)).first;
      }
      node = it->second;
    }
    temp[node].token = index;
  }
  Trie trie;
  trie.nodes.resize(temp.size());
  for (size_t i = 0; i < temp.size(); ++i) {
    trie.nodes[i].children_begin = static_cast<int32_t>(trie.edges.size());
    for (const auto& [byte, child] : temp[i].children) trie.edges.push_back({byte, child});
    trie.nodes[i].children_end = static_cast<int32_t>(trie.edges.size());
    trie.nodes[i].token = temp[i].token;
  }
  for (const auto& [byte, child] : temp[0].children) trie.first_byte[byte] = true;
  return trie;
}

int32_t AddedTokenMatcher::LongestAt(const Trie& trie, std::string_view text, size_t pos, size_t* length) const {
  int32_t node = 0;
  int32_t best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const uint8_t b = static_cast<uint8_t>(text[i]);
    const Node& n = trie.nodes[node];
    const auto begin = trie.edges.begin() + n.children_begin;
    const auto end = trie.edges.begin() + n.children_end;
    const auto it = std::lower_bound(begin, end, b, [](const Edge& e, uint8_t v) { return e.byte < v; });
    if (it == end || it->byte != b) break;
    node = it->node;
    if (trie.nodes[node].token >= 0) {
      best = trie.nodes[node].token;
      *length = i + 1 - pos;
    }
  }
  return best;
}

void AddedTokenMatcher::SplitPass(const Trie& trie, std::string_view sentence,
                                  std::vector<AddedTokenSplit>* out) const {
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < sentence.size()) {
    if (!trie.first_byte[static_cast<uint8_t>(sentence[pos])]) {
      ++pos;
      continue;
    }
    size_t length = 0;
    const int32_t index = LongestAt(trie, sentence, pos, &length);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t start = pos;
    size_t stop = pos + length;
    pos = stop;  // matches never overlap, even when vetoed below
    if (token.single_word) {
      const bool start_space = start == 0 || !EndsWithWord(sentence.substr(0, start));
      const bool stop_space = stop == sentence.size() || !StartsWithWord(sentence.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (token.lstrip) start = std::max(TrailingSpaceStart(sentence.substr(0, start)), start_offset);
    if (token.rstrip) stop += LeadingSpaceLength(sentence.substr(stop));
    if (start_offset < start) out->push_back({sentence.substr(start_offset, start - start_offset), std::nullopt});
    out->push_back({sentence.substr(start, stop - start), token.id});
    start_offset = stop;
  }
  if (start_offset < sentence.size()) out->push_back({sentence.substr(start_offset), std::nullopt});
}

std::vector<AddedTokenSplit> AddedTokenMatcher::SplitWith(const Trie& trie, std::string_view text) const {
  std::vector<AddedTokenSplit> out;
  if (trie.empty()) {
    if (!text.empty()) out.push_back({text, std::nullopt});
  } else {
    SplitPass(trie, text, &out);
  }
  return out;
}

}  // namespace tessera
