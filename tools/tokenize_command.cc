// `tessera tokenize`: stdin -> ids or ids -> text. Input bytes are used
// exactly as read (no trailing-newline stripping), so `printf 'hi'` and
// `echo hi` differ by the "\n" token; decoded text is written without adding
// a newline, so encode | decode --keep-special-tokens round-trips byte for
// byte. The defaults are the API's (Tokenize, Detokenize): no template tokens
// added, special tokens left out of decoded text; one flag each, named after
// the request field, turns them on.
#include "tools/tokenize_command.h"

#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/cli/cli_flags.h"

namespace tessera {
namespace {

constexpr FlagSpec kTokenizeFlags[] = {
    {"tokenizer", true, "path to a Hugging Face tokenizer.json (required)"},
    {"add-special-tokens", false, "encode: add the template's special tokens such as BOS (default: none, as the "
                                  "API's add_special_tokens)"},
    {"decode", false, "read a JSON array of ids from stdin and print the text"},
    {"keep-special-tokens", false, "decode: spell special tokens such as <|eos|> (default: left out, as the API's "
                                   "keep_special_tokens)"},
};

constexpr char kSummary[] =
    "Encodes standard input to token ids (a JSON array on one line), or with --decode turns a JSON\n"
    "array of ids back into text. Input is used byte for byte (`echo` adds a newline; use printf).";

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& input) {
  const nlohmann::json ids = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (ids.is_discarded() || !ids.is_array()) return absl::InvalidArgumentError("--decode expects a JSON array of ids");
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (const nlohmann::json& id : ids) {
    if (!id.is_number_integer() || id.get<int64_t>() < INT32_MIN || id.get<int64_t>() > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat("--decode: not a token id: ", id.dump()));
    }
    out.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return out;
}

absl::Status Run(const CliFlags& flags) {
  absl::StatusOr<std::string> path = flags.RequireString("tokenizer");
  if (!path.ok()) return path.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromFile(*path);
  if (!tokenizer.ok()) return tokenizer.status();
  const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (flags.Has("decode")) {
    absl::StatusOr<std::vector<int32_t>> ids = ParseIds(input);
    if (!ids.ok()) return ids.status();
    absl::StatusOr<std::string> text =
        (*tokenizer)->Decode(*ids, /*skip_special_tokens=*/!flags.Has("keep-special-tokens"));
    if (!text.ok()) return text.status();
    std::cout << *text;
  } else {
    absl::StatusOr<std::vector<int32_t>> ids =
        (*tokenizer)->Encode(input, /*add_special_tokens=*/flags.Has("add-special-tokens"));
    if (!ids.ok()) return ids.status();
    std::cout << "[" << absl::StrJoin(*ids, ",") << "]\n";
  }
  std::cout.flush();
  if (!std::cout) return absl::UnavailableError("cannot write to standard output");
  return absl::OkStatus();
}

}  // namespace

int RunTokenizeCommand(int argc, char** argv) {
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kTokenizeFlags);
  if (flags.ok() && flags->help()) {
    std::cout << FlagsUsage("tokenize", kSummary, kTokenizeFlags);
    return 0;
  }
  if (flags.ok() && !flags->Has("tokenizer")) flags = absl::InvalidArgumentError("--tokenizer is required");
  if (flags.ok() && flags->Has("decode") && flags->Has("add-special-tokens")) {
    flags = absl::InvalidArgumentError("--add-special-tokens applies to encoding, not to --decode");
  }
  if (flags.ok() && !flags->Has("decode") && flags->Has("keep-special-tokens")) {
    flags = absl::InvalidArgumentError("--keep-special-tokens applies to --decode");
  }
  if (!flags.ok()) {
    std::cerr << "tessera tokenize: " << flags.status().message() << "\n\n"
              << FlagsUsage("tokenize", kSummary, kTokenizeFlags);
    return 2;
  }
  if (absl::Status status = Run(*flags); !status.ok()) {
    std::cerr << "tessera tokenize: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace tessera
