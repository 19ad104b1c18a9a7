// The decoder chain as a stream (see decoder.h). Each step mirrors the
// decode_chain of the Hugging Face decoder with the same name.
#include "coordinator/tokenizer/decoder.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/tokenizer/byte_level.h"
#include "coordinator/tokenizer/utf8.h"

namespace tessera {
namespace {

const char* KindName(DecoderStep::Kind kind) {
  switch (kind) {
    case DecoderStep::Kind::kByteLevel:
      return "ByteLevel";
    case DecoderStep::Kind::kByteFallback:
      return "ByteFallback";
    case DecoderStep::Kind::kFuse:
      return "Fuse";
    case DecoderStep::Kind::kStrip:
      return "Strip";
    case DecoderStep::Kind::kReplace:
      return "Replace";
    case DecoderStep::Kind::kMetaspace:
      return "Metaspace";
  }
  return "?";
}

bool IsOneCharacter(std::string_view s) { return !s.empty() && Utf8SequenceLength(s, 0) == s.size(); }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte of a byte-fallback token "<0xAB>": like tokenizers, 6 bytes and
// u8::from_str_radix on the middle two (which also takes "+A").
std::optional<uint8_t> ByteFallbackValue(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token.back() != '>') return std::nullopt;
  std::string_view digits = token.substr(3, 2);
  if (digits.front() == '+') digits.remove_prefix(1);
  int value = 0;
  for (char c : digits) {
    const int d = HexDigit(c);
    if (d < 0) return std::nullopt;
    value = value * 16 + d;
  }
  return static_cast<uint8_t>(value);
}

// Every occurrence of `from` (one character) replaced by `to`.
std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t prev = 0;
  for (size_t pos = text.find(from); pos != std::string_view::npos; pos = text.find(from, pos + from.size())) {
    out.append(text.substr(prev, pos - prev));
    out.append(to);
    prev = pos + from.size();
  }
  out.append(text.substr(prev));
  return out;
}

// Strip's decode_chain on one token: up to `start` leading and `stop`
// trailing `content` characters go. (tokenizers panics where the two cuts
// cross; the token becomes empty here.)
std::string StripToken(std::string_view token, std::string_view content, size_t start, size_t stop) {
  size_t begin = 0;
  for (size_t i = 0; i < start && token.substr(begin, content.size()) == content; ++i) begin += content.size();
  size_t end = token.size();
  for (size_t i = 0; i < stop && end >= content.size() && token.substr(end - content.size(), content.size()) == content;
       ++i) {
    end -= content.size();
  }
  return begin >= end ? std::string() : std::string(token.substr(begin, end - begin));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::Create(const std::vector<DecoderStep>& steps) {
  auto decoder = std::unique_ptr<Decoder>(new Decoder());
  decoder->fuse_index_ = steps.size();
  for (size_t i = 0; i < steps.size(); ++i) {
    const DecoderStep& config = steps[i];
    const bool after_fuse = decoder->fuse_index_ < i;
    Step step{config, nullptr};
    switch (config.kind) {
      case DecoderStep::Kind::kByteLevel:
        if (steps.size() != 1) {
          return absl::InvalidArgumentError(
              absl::StrCat(config.path, ".type 'ByteLevel' is only supported as the whole decoder"));
        }
        decoder->byte_level_ = true;
        break;
      case DecoderStep::Kind::kFuse:
        if (decoder->fuse_index_ == steps.size()) decoder->fuse_index_ = i;
        break;
      case DecoderStep::Kind::kStrip:
      case DecoderStep::Kind::kMetaspace:
        if (!IsOneCharacter(config.content)) {
          return absl::InvalidArgumentError(absl::StrCat(
              config.path, config.kind == DecoderStep::Kind::kStrip ? ".content" : ".replacement",
              " must be one character. Given: '", config.content, "'"));
        }
        break;
      case DecoderStep::Kind::kReplace:
      case DecoderStep::Kind::kByteFallback:
        if (after_fuse) {
          return absl::InvalidArgumentError(
              absl::StrCat(config.path, ".type '", KindName(config.kind), "' after 'Fuse' is not supported"));
        }
        if (config.kind == DecoderStep::Kind::kReplace) {
          auto regex = Pcre2Regex::Compile(config.pattern, config.pattern_is_literal);
          if (!regex.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(config.path, ".pattern: ", regex.status().message()));
          }
          step.regex = *std::move(regex);
        }
        break;
    }
    decoder->steps_.push_back(std::move(step));
  }
  return decoder;
}

std::string Decoder::Decode(const std::vector<std::string_view>& tokens) const {
  DecoderStream stream(this);
  std::string text;
  for (std::string_view token : tokens) stream.Push(token, &text);
  stream.Finish(&text);
  return text;
}

DecoderStream::DecoderStream(const Decoder* decoder) : decoder_(decoder) { Reset(); }

void DecoderStream::Reset() {
  states_.assign(decoder_->steps_.size(), StepState());
  for (size_t i = 0; i < states_.size(); ++i) states_[i].start_left = decoder_->steps_[i].config.start;
  utf8_pending_.clear();
}

size_t DecoderStream::pending_bytes() const {
  size_t n = utf8_pending_.size();
  for (size_t i = 0; i < states_.size(); ++i) {
    n += states_[i].byte_run.size() + states_[i].held * decoder_->steps_[i].config.content.size();
  }
  return n;
}

void DecoderStream::Push(std::string_view token, std::string* text) {
  if (decoder_->byte_level_) {
    utf8_pending_.append(ByteLevelDecodeToken(token));
    const size_t stable = Utf8StablePrefixLength(utf8_pending_);
    Utf8AppendLossy(std::string_view(utf8_pending_).substr(0, stable), text);
    utf8_pending_.erase(0, stable);
    return;
  }
  std::vector<std::string> tokens;
  tokens.emplace_back(token);
  RunTokenSteps(0, &tokens, text);
}

void DecoderStream::Finish(std::string* text) {
  if (decoder_->byte_level_) {
    Utf8AppendLossy(utf8_pending_, text);
    Reset();
    return;
  }
  // In order, so that what one step releases passes the later steps before
  // they release theirs.
  for (size_t i = 0; i < decoder_->fuse_index_; ++i) {
    std::vector<std::string> released;
    FlushByteRun(states_[i], &released);
    RunTokenSteps(i + 1, &released, text);
  }
  Reset();  // what a Strip after Fuse still holds is trailing: stripped
}

void DecoderStream::RunTokenSteps(size_t first, std::vector<std::string>* tokens, std::string* text) {
  std::vector<std::string> next;
  for (size_t i = first; i < decoder_->fuse_index_ && !tokens->empty(); ++i) {
    next.clear();
    for (std::string& token : *tokens) ApplyTokenStep(i, std::move(token), &next);
    tokens->swap(next);
  }
  for (std::string& token : *tokens) RunFusedSteps(decoder_->fuse_index_ + 1, std::move(token), text);
}

void DecoderStream::FlushByteRun(StepState& state, std::vector<std::string>* out) {
  if (state.byte_run.empty()) return;
  if (Utf8FirstInvalid(state.byte_run) == state.byte_run.size()) {
    out->push_back(std::move(state.byte_run));
  } else {
    out->insert(out->end(), state.byte_run.size(), std::string(kUtf8Replacement));  // one per byte
  }
  state.byte_run.clear();
}

void DecoderStream::ApplyTokenStep(size_t index, std::string token, std::vector<std::string>* out) {
  const Decoder::Step& step = decoder_->steps_[index];
  const DecoderStep& config = step.config;
  StepState& state = states_[index];
  switch (config.kind) {
    case DecoderStep::Kind::kByteFallback:
      if (const std::optional<uint8_t> byte = ByteFallbackValue(token)) {
        state.byte_run.push_back(static_cast<char>(*byte));
        return;
      }
      FlushByteRun(state, out);
      out->push_back(std::move(token));
      return;
    case DecoderStep::Kind::kReplace: {
      std::vector<RegexMatch> matches;
      // An empty token has no match, as in tokenizers; a regex that fails
      // (PCRE2's match limit) leaves the token as it is.
      if (token.empty() || !step.regex->FindAll(token, &matches).ok() || matches.empty()) {
        out->push_back(std::move(token));
        return;
      }
      std::string replaced;
      size_t prev = 0;
      for (const RegexMatch& m : matches) {
        replaced.append(token, prev, m.begin - prev);
        replaced.append(config.content);
        prev = m.end;
      }
      replaced.append(token, prev);
      out->push_back(std::move(replaced));
      return;
    }
    case DecoderStep::Kind::kStrip:
      out->push_back(StripToken(token, config.content, config.start, config.stop));
      return;
    case DecoderStep::Kind::kMetaspace: {
      const bool first = state.tokens_seen++ == 0;
      out->push_back(ReplaceAll(token, config.content, first && !config.prepend_never ? "" : " "));
      return;
    }
    case DecoderStep::Kind::kByteLevel:  // only as the whole chain, handled by Push
    case DecoderStep::Kind::kFuse:       // never before fuse_index_
      out->push_back(std::move(token));
      return;
  }
}

void DecoderStream::RunFusedSteps(size_t first, std::string chunk, std::string* text) {
  for (size_t i = first; i < decoder_->steps_.size() && !chunk.empty(); ++i) chunk = ApplyFusedStep(i, chunk);
  text->append(chunk);
}

std::string DecoderStream::ApplyFusedStep(size_t index, std::string_view chunk) {
  const DecoderStep& config = decoder_->steps_[index].config;
  StepState& state = states_[index];
  switch (config.kind) {
    case DecoderStep::Kind::kStrip: {
      const std::string_view content = config.content;
      std::string out;
      size_t pos = 0;
      while (pos < chunk.size()) {
        size_t n = Utf8SequenceLength(chunk, pos);
        if (n == 0) n = 1;
        const std::string_view c = chunk.substr(pos, n);
        pos += n;
        const bool is_content = c == content;
        if (state.start_left > 0 && is_content) {
          --state.start_left;
          continue;
        }
        state.start_left = 0;
        if (config.stop > 0 && is_content) {
          if (++state.held > config.stop) {
            out.append(content);
            --state.held;
          }
          continue;
        }
        for (; state.held > 0; --state.held) out.append(content);
        out.append(c);
      }
      return out;
    }
    case DecoderStep::Kind::kMetaspace:
      // After Fuse there is one token, the first: replacements vanish.
      return ReplaceAll(chunk, config.content, config.prepend_never ? " " : "");
    case DecoderStep::Kind::kFuse:
      return std::string(chunk);
    case DecoderStep::Kind::kByteLevel:
    case DecoderStep::Kind::kByteFallback:
    case DecoderStep::Kind::kReplace:
      break;  // refused after Fuse by Decoder::Create
  }
  return std::string(chunk);
}

}  // namespace tessera
