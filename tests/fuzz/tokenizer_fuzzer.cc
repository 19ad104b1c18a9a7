// libFuzzer target for the tokenizer. The first input byte picks a mode:
//   0: the rest is a tokenizer.json document -> FromJson must return a status,
//      and a tokenizer it accepts must encode/decode a probe text.
//   1: the rest is text for a fixture tokenizer (second byte picks it):
//      Encode must not crash; valid UTF-8 must round-trip through Decode
//      (byte-level BPE is lossless), and streaming must equal Decode.
//   2: the rest is a list of int32 ids: Decode and the StreamingDecoder must
//      agree, and every delta must be whole UTF-8.
//   3: the rest is "pattern\0text": a Split pre-tokenizer with that regex
//      (PCRE2 rewrite + Oniguruma iteration + behaviours) over the text.
//   4: the rest is token strings separated by NUL for a decoder chain (second
//      byte picks it: the fixtures' and crafted orders of Metaspace,
//      ByteFallback, Fuse, Strip, Replace): Decode must equal the streamed
//      deltas, each whole UTF-8.
//   5: the rest is text for a normalizer chain (second byte picks it: NFC /
//      NFD / NFKC / NFKD, Lowercase, Strip, Prepend, Replace): the result
//      must be valid UTF-8 and the lead within it.
// Invariant violations __builtin_trap() so libFuzzer records them.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/tokenizer/byte_level.h"
#include "coordinator/tokenizer/decoder.h"
#include "coordinator/tokenizer/normalizer.h"
#include "coordinator/tokenizer/streaming_decoder.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "coordinator/tokenizer/tokenizer_spec.h"
#include "coordinator/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace {

using tessera::Tokenizer;

std::vector<std::unique_ptr<Tokenizer>>& Fixtures() {
  static auto* fixtures = [] {
    auto* list = new std::vector<std::unique_ptr<Tokenizer>>();
    for (const char* name : {"bpe512-gpt2split", "bpe1000-llama3split", "bpe512-addedtokens", "bpe1000-splitbehaviors",
                             "chars-unk-fused", "bpe600-neox-nfc", "bpe700-spm-legacy", "bpe700-spm-metaspace",
                             "bpe700-spm-mixed"}) {
      auto tokenizer =
          Tokenizer::FromFile(std::string(TESSERA_TEST_DATA_DIR) + "/tokenizers/" + name + "/tokenizer.json");
      if (!tokenizer.ok()) __builtin_trap();  // the fixtures must load
      list->push_back(*std::move(tokenizer));
    }
    return list;
  }();
  return *fixtures;
}

bool IsValidUtf8(std::string_view s) { return tessera::Utf8FirstInvalid(s) == s.size(); }

void CheckStreamingMatchesDecode(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool skip) {
  auto whole = tokenizer.Decode(ids, skip);
  tessera::StreamingDecoder stream(&tokenizer, skip);
  std::string streamed;
  bool failed = false;
  for (int32_t id : ids) {
    auto delta = stream.Feed(id);
    if (!delta.ok()) {
      failed = true;
      continue;
    }
    if (!IsValidUtf8(*delta)) __builtin_trap();
    streamed += *delta;
  }
  streamed += stream.Finish();
  if (whole.ok() != !failed) __builtin_trap();
  if (whole.ok() && (*whole != streamed || !IsValidUtf8(*whole))) __builtin_trap();
}

void FuzzJson(std::string_view json) {
  auto tokenizer = Tokenizer::FromJson(json);
  if (!tokenizer.ok()) return;
  auto ids = (*tokenizer)->Encode("Hello wörld 12 🙂 <|bos|>", true);
  if (ids.ok()) CheckStreamingMatchesDecode(**tokenizer, *ids, false);
}

void FuzzEncode(uint8_t which, std::string_view text) {
  const Tokenizer& tokenizer = *Fixtures()[which % Fixtures().size()];
  const bool lossless = which % Fixtures().size() < 2;  // gpt2split, llama3split
  auto ids = tokenizer.Encode(text, (which & 0x80) != 0);
  if (!ids.ok()) {
    if (IsValidUtf8(text)) __builtin_trap();  // only invalid UTF-8 may be refused
    return;
  }
  if (!IsValidUtf8(text)) __builtin_trap();
  auto plain = tokenizer.Encode(text, false);
  if (!plain.ok()) __builtin_trap();
  auto decoded = tokenizer.Decode(*plain, false);
  if (!decoded.ok()) __builtin_trap();
  if (lossless && *decoded != text) __builtin_trap();
  CheckStreamingMatchesDecode(tokenizer, *ids, true);
}

void FuzzDecode(uint8_t which, std::string_view bytes) {
  const Tokenizer& tokenizer = *Fixtures()[which % Fixtures().size()];
  std::vector<int32_t> ids(bytes.size() / 2);
  for (size_t i = 0; i < ids.size(); ++i) {
    // Mostly in-range ids; the top bit of a pair makes an out-of-range one.
    const uint16_t v =
        static_cast<uint16_t>(static_cast<uint8_t>(bytes[2 * i]) | (static_cast<uint8_t>(bytes[2 * i + 1]) << 8));
    const int32_t low = v & 0x3FFF;
    ids[i] = !(v & 0x8000) ? v % (tokenizer.vocab_size() + 1) : (v & 0x4000) ? -low - 1 : (low << 16) + 7;
  }
  CheckStreamingMatchesDecode(tokenizer, ids, (which & 0x80) != 0);
}

void FuzzSplitPattern(std::string_view rest) {
  const size_t nul = rest.find('\0');
  if (nul == std::string_view::npos || nul > 32 || rest.size() - nul > 160) return;  // keep backtracking bounded
  const std::string pattern(rest.substr(0, nul));
  const std::string text(rest.substr(nul + 1));
  if (!IsValidUtf8(pattern)) return;
  static const char* const kBehaviors[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
  nlohmann::json json = {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", pattern}}},
           {"behavior", kBehaviors[text.size() % 5]},
           {"invert", text.size() % 2 == 0}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", nlohmann::json::object()}, {"merges", nlohmann::json::array()}}},
  };
  // Byte-level alphabet only: every byte is one token, no merges.
  for (int b = 0; b < 256; ++b)
    json["model"]["vocab"][std::string(tessera::ByteLevelCharOf(static_cast<uint8_t>(b)))] = b;
  auto tokenizer = Tokenizer::FromJson(json.dump());
  if (!tokenizer.ok()) return;  // e.g. an invalid regex
  auto ids = (*tokenizer)->Encode(text, false);
  if (!ids.ok()) return;  // invalid UTF-8, or the regex hit PCRE2's match limit
  if (!IsValidUtf8(text)) __builtin_trap();
  // Every behaviour but Removed keeps all the text, in order.
  const bool removed = text.size() % 5 == 0;
  if (!removed && ids->size() != text.size()) __builtin_trap();
  if (!removed && *(*tokenizer)->Decode(*ids, false) != text) __builtin_trap();
}

// A tokenizer.json around one component, parsed into its spec.
tessera::TokenizerSpec SpecWith(const char* kind, const nlohmann::json& component) {
  const nlohmann::json model = {
      {"type", "BPE"}, {"vocab", nlohmann::json::object()}, {"merges", nlohmann::json::array()}};
  nlohmann::json doc = {{"decoder", {{"type", "Fuse"}}}, {"model", model}};
  doc[kind] = component;
  auto spec = tessera::ParseTokenizerSpec(doc.dump());
  if (!spec.ok()) __builtin_trap();  // the chains below are all supported
  return *std::move(spec);
}

const std::vector<std::unique_ptr<tessera::Decoder>>& DecoderChains() {
  static auto* chains = [] {
    const nlohmann::json meta = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}};
    const nlohmann::json never = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}};
    const nlohmann::json replace = {{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}};
    const nlohmann::json replace_regex = {
        {"type", "Replace"}, {"pattern", {{"Regex", "\u2581{2,}|x*"}}}, {"content", "_"}};
    const nlohmann::json fallback = {{"type", "ByteFallback"}};
    const nlohmann::json fuse = {{"type", "Fuse"}};
    const nlohmann::json strip = {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 2}};
    const nlohmann::json strip_meta = {{"type", "Strip"}, {"content", "\u2581"}, {"start", 2}, {"stop", 0}};
    const auto seq = [](nlohmann::json list) { return nlohmann::json{{"type", "Sequence"}, {"decoders", list}}; };
    auto* list = new std::vector<std::unique_ptr<tessera::Decoder>>();
    for (const nlohmann::json& chain :
         {seq({replace, fallback, fuse, strip}), seq({meta, fallback, fuse}), seq({fallback, never, fuse, strip}),
          seq({replace_regex, fallback, strip_meta, meta, fuse, never, strip}), seq({fuse, meta, strip}),
          seq({fallback, fallback, strip, replace}), nlohmann::json{{"type", "ByteLevel"}}, meta}) {
      auto decoder = tessera::Decoder::Create(SpecWith("decoder", chain).decoder);
      if (!decoder.ok()) __builtin_trap();
      list->push_back(*std::move(decoder));
    }
    return list;
  }();
  return *chains;
}

const std::vector<std::unique_ptr<tessera::Normalizer>>& NormalizerChains() {
  static auto* chains = [] {
    const auto seq = [](nlohmann::json list) { return nlohmann::json{{"type", "Sequence"}, {"normalizers", list}}; };
    const nlohmann::json prepend = {{"type", "Prepend"}, {"prepend", "\u2581"}};
    const nlohmann::json replace = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}};
    const nlohmann::json replace_regex = {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+|a*"}}}, {"content", ""}};
    const nlohmann::json strip = {{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}};
    auto* list = new std::vector<std::unique_ptr<tessera::Normalizer>>();
    for (const nlohmann::json& chain :
         {nlohmann::json{{"type", "NFC"}}, nlohmann::json{{"type", "NFD"}}, nlohmann::json{{"type", "NFKC"}},
          nlohmann::json{{"type", "NFKD"}}, seq({prepend, replace}),
          seq({strip, {{"type", "NFKD"}}, {{"type", "Lowercase"}}, replace_regex, prepend})}) {
      auto normalizer = tessera::Normalizer::Create(SpecWith("normalizer", chain).normalizer);
      if (!normalizer.ok()) __builtin_trap();
      list->push_back(*std::move(normalizer));
    }
    return list;
  }();
  return *chains;
}

void FuzzDecoderChain(uint8_t which, std::string_view rest) {
  const tessera::Decoder& decoder = *DecoderChains()[which % DecoderChains().size()];
  std::vector<std::string_view> tokens;
  size_t begin = 0;
  while (begin <= rest.size() && tokens.size() < 256) {
    size_t end = rest.find('\0', begin);
    if (end == std::string_view::npos) end = rest.size();
    tokens.push_back(rest.substr(begin, end - begin));
    begin = end + 1;
  }
  for (std::string_view token : tokens) {
    if (!IsValidUtf8(token)) return;  // token strings come from JSON: always UTF-8
  }
  const std::string whole = decoder.Decode(tokens);
  if (!IsValidUtf8(whole)) __builtin_trap();
  tessera::DecoderStream stream(&decoder);
  std::string streamed;
  for (std::string_view token : tokens) {
    std::string delta;
    stream.Push(token, &delta);
    if (!IsValidUtf8(delta)) __builtin_trap();
    streamed += delta;
  }
  stream.Finish(&streamed);
  if (streamed != whole || stream.pending_bytes() != 0) __builtin_trap();
}

void FuzzNormalizerChain(uint8_t which, std::string_view rest) {
  if (!IsValidUtf8(rest)) return;
  const tessera::Normalizer& normalizer = *NormalizerChains()[which % NormalizerChains().size()];
  std::string text(rest);
  size_t lead = text.empty() ? 0 : tessera::Utf8SequenceLength(text, 0);
  if (!normalizer.Normalize(&text, &lead).ok()) return;  // PCRE2's match limit
  if (!IsValidUtf8(text) || lead > text.size()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Fixtures();
  DecoderChains();
  NormalizerChains();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  switch (data[0] % 6) {
    case 0:
      FuzzJson(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
      break;
    case 1:
      FuzzEncode(data[1], rest);
      break;
    case 2:
      FuzzDecode(data[1], rest);
      break;
    case 3:
      FuzzSplitPattern(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
      break;
    case 4:
      FuzzDecoderChain(data[1], rest);
      break;
    case 5:
      FuzzNormalizerChain(data[1], rest);
      break;
  }
  return 0;
}
