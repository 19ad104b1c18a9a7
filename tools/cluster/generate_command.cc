// The client checks only what it must to build a request (ids parse, numbers
// fit their fields); what the values may be (max_new_tokens limit, top_p
// range, context capacity) is the coordinator's to judge, so the limits live
// in one place and its INVALID_ARGUMENT messages quote them. A text prompt
// goes to the server as text: the tokenizer lives with the model there.
//
// How it connects: TLS, trusting --tls-ca (else the system's roots), with the
// bearer token of --token-file or $TESSERA_API_TOKEN; plaintext with
// --insecure, or by default to a loopback server when nothing asks for TLS
// (no --tls, --tls-ca or token): that is how `tessera local` runs unless
// given --tls. A token never travels in plaintext.
#include "tools/cluster/generate_command.h"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "rpc/grpc_security.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tools/cli/cli_flags.h"
#include "tools/cluster/token_id_list.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

constexpr FlagSpec kGenerateFlags[] = {
    {"server", true, "coordinator address HOST:PORT (required)"},
    {"prompt", true, "prompt text (the server tokenizes it; it needs a tokenizer)"},
    {"prompt-file", true, "file whose bytes are the prompt text (a final newline is part of it)"},
    {"prompt-ids", true, "prompt token ids: \"1,2,3\", \"1 2 3\" or \"[1,2,3]\""},
    {"prompt-ids-file", true, "file of prompt token ids (same forms; any whitespace)"},
    {"add-special-tokens", false, "text prompt: add the tokenizer's template tokens (e.g. BOS)"},
    {"print", true, "what streams to stdout: text or ids (default: text for a text prompt, else ids)"},
    {"max-new-tokens", true, "tokens to generate at most (default 64; 0: up to the served context, capped by the "
                             "server's default)"},
    {"temperature", true, "0 (default): greedy"},
    {"top-k", true, "sample among the k most likely tokens (0, default: all)"},
    {"top-p", true, "sample within the nucleus of this probability (1, default: all)"},
    {"seed", true, "seed of the request's random stream (default 0)"},
    {"stop-ids", true, "stop after any of these token ids: \"a,b\""},
    {"stop", true, "stop when the text reaches this string (not included in the output; repeat for several; needs "
                   "the server's tokenizer)"},
    {"min-tokens", true, "no stop (ids, EOS, --stop) before this many tokens (default 0)"},
    {"ignore-eos", false, "do not stop at the model's end-of-sequence token"},
    {"repetition-penalty", true, "vLLM's repetition penalty over prompt + output tokens (1, default: none)"},
    {"presence-penalty", true, "subtracted once from each generated token's logit, in [-2, 2] (default 0)"},
    {"frequency-penalty", true, "subtracted per occurrence from a generated token's logit, in [-2, 2] (default 0)"},
    {"min-p", true, "cut tokens less likely than this times the most likely one (default 0: none)"},
    {"logit-bias", true, "added to token logits before sampling: \"ID:BIAS,ID:BIAS\" (each in [-100, 100])"},
    {"logprobs", true, "print each generated token's log-probability and this many alternatives on stderr"},
    {"prompt-logprobs", true, "print each prompt token's log-probability and this many alternatives on stderr"},
    {"priority", true, "admission order when requests wait for room: lower first (default 0)"},
    {"cache-salt", true, "prefix reuse: share cached prompt prefixes only with requests of this salt (default: empty)"},
    {"bypass-prefix-cache", false, "neither reuse a cached prompt prefix nor keep this prompt's"},
    {"request-id", true, "the request's id (default: one the server makes); Abort takes it"},
    {"timeout-s", true, "give up after this many seconds (default: never)"},
    {"tls-ca", true, "PEM CA certificate the server's certificate must chain to (TLS; default: the system's roots)"},
    {"tls", false, "TLS even to a loopback server (implied by --tls-ca or a token; the default elsewhere)"},
    {"tls-server-name", true, "name the server's certificate must carry (default: the host of --server)"},
    {"token-file", true, "file holding the bearer token (the first token line; '#' comments); default: the "
                         "environment variable TESSERA_API_TOKEN"},
    {"insecure", false, "plaintext, no token (the default to a loopback server without TLS flags or token)"},
};

constexpr char kTokenEnvironmentVariable[] = "TESSERA_API_TOKEN";

constexpr char kSummary[] =
    "Generates from a prompt (text or token ids) on a running Tessera server, printing prefill progress\n"
    "and a summary on stderr and the generated text or ids on stdout as they stream.";

enum class PrintMode { kIds, kText };

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// The prompt as token ids, from --prompt-ids or --prompt-ids-file.
absl::StatusOr<std::vector<int32_t>> ResolvePromptIds(const CliFlags& flags) {
  const bool inline_ids = flags.Has("prompt-ids");
  std::vector<int32_t> ids;
  if (inline_ids) {
    ASSIGN_OR_RETURN(ids, ParseTokenIdList(flags.GetString("prompt-ids", "")));
  } else {
    const std::string path = flags.GetString("prompt-ids-file", "");
    ASSIGN_OR_RETURN(const std::string contents, ReadFile(path));
    absl::StatusOr<std::vector<int32_t>> parsed = ParseTokenIdList(contents);
    if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.status().message()));
    ids = *std::move(parsed);
  }
  if (ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  return ids;
}

// The prompt as text or token ids, into the request; exactly one flag gives it.
absl::Status ResolvePrompt(const CliFlags& flags, v1::GenerateRequest& request) {
  int given = 0;
  for (absl::string_view name : {"prompt", "prompt-file", "prompt-ids", "prompt-ids-file"}) given += flags.Has(name);
  if (given != 1) {
    return absl::InvalidArgumentError("give exactly one of --prompt, --prompt-file, --prompt-ids and --prompt-ids-file");
  }
  if (flags.Has("prompt") || flags.Has("prompt-file")) {
    std::string text = flags.GetString("prompt", "");
    if (flags.Has("prompt-file")) {
      ASSIGN_OR_RETURN(text, ReadFile(flags.GetString("prompt-file", "")));
    }
    if (text.empty()) return absl::InvalidArgumentError("the prompt is empty");
    request.set_prompt_text(std::move(text));
    request.set_add_special_tokens(flags.Has("add-special-tokens"));
    return absl::OkStatus();
  }
  if (flags.Has("add-special-tokens")) {
    return absl::InvalidArgumentError("--add-special-tokens applies to a text prompt (--prompt or --prompt-file)");
  }
  ASSIGN_OR_RETURN(const std::vector<int32_t> ids, ResolvePromptIds(flags));
  request.mutable_prompt_token_ids()->Add(ids.begin(), ids.end());
  return absl::OkStatus();
}

absl::StatusOr<PrintMode> ResolvePrintMode(const CliFlags& flags, const v1::GenerateRequest& request) {
  const std::string mode = flags.GetString("print", request.prompt_text().empty() ? "ids" : "text");
  if (mode == "ids") return PrintMode::kIds;
  if (mode == "text") return PrintMode::kText;
  return absl::InvalidArgumentError(absl::StrCat("--print must be ids or text. Given: '", mode, "'"));
}

absl::StatusOr<int32_t> GetInt32(const CliFlags& flags, absl::string_view name, int32_t fallback) {
  ASSIGN_OR_RETURN(const int64_t value, flags.GetInt(name, fallback));
  if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " does not fit in 32 bits. Given: ", value));
  }
  return static_cast<int32_t>(value);
}

absl::StatusOr<float> GetFiniteFloat(const CliFlags& flags, absl::string_view name, double fallback) {
  ASSIGN_OR_RETURN(const double value, flags.GetDouble(name, fallback));
  if (!std::isfinite(value)) return absl::InvalidArgumentError(absl::StrCat("--", name, " must be finite"));
  return static_cast<float>(value);
}

absl::StatusOr<v1::GenerateRequest> BuildRequest(const CliFlags& flags) {
  v1::GenerateRequest request;
  RETURN_IF_ERROR(ResolvePrompt(flags, request));

  v1::SamplingParams& sampling = *request.mutable_sampling();
  {
    ASSIGN_OR_RETURN(const float temperature, GetFiniteFloat(flags, "temperature", 0));
    sampling.set_temperature(temperature);
  }
  {
    ASSIGN_OR_RETURN(const int32_t top_k, GetInt32(flags, "top-k", 0));
    sampling.set_top_k(top_k);
  }
  {
    ASSIGN_OR_RETURN(const float top_p, GetFiniteFloat(flags, "top-p", 1));
    sampling.set_top_p(top_p);
  }
  if (flags.Has("seed")) {
    uint64_t seed = 0;
    const std::string text = flags.GetString("seed", "");
    if (!absl::SimpleAtoi(text, &seed)) {
      return absl::InvalidArgumentError(absl::StrCat("--seed must be an integer in [0, 2^64). Given: '", text, "'"));
    }
    sampling.set_seed(seed);
  }

  v1::StoppingCriteria& stopping = *request.mutable_stopping();
  {
    ASSIGN_OR_RETURN(const int32_t max_new_tokens, GetInt32(flags, "max-new-tokens", 64));
    stopping.set_max_new_tokens(max_new_tokens);
  }
  if (flags.Has("stop-ids")) {
    absl::StatusOr<std::vector<int32_t>> stop_ids = ParseTokenIdList(flags.GetString("stop-ids", ""));
    if (!stop_ids.ok()) return absl::InvalidArgumentError(absl::StrCat("--stop-ids: ", stop_ids.status().message()));
    stopping.mutable_stop_token_ids()->Add(stop_ids->begin(), stop_ids->end());
  }
  stopping.set_ignore_eos(flags.Has("ignore-eos"));
  for (const std::string& stop : flags.GetAll("stop")) stopping.add_stop_strings(stop);
  {
    ASSIGN_OR_RETURN(const int32_t min_tokens, GetInt32(flags, "min-tokens", 0));
    stopping.set_min_tokens(min_tokens);
  }
  {
    ASSIGN_OR_RETURN(const float repetition, GetFiniteFloat(flags, "repetition-penalty", 1));
    sampling.set_repetition_penalty(repetition);
    ASSIGN_OR_RETURN(const float presence, GetFiniteFloat(flags, "presence-penalty", 0));
    sampling.set_presence_penalty(presence);
    ASSIGN_OR_RETURN(const float frequency, GetFiniteFloat(flags, "frequency-penalty", 0));
    sampling.set_frequency_penalty(frequency);
    ASSIGN_OR_RETURN(const float min_p, GetFiniteFloat(flags, "min-p", 0));
    sampling.set_min_p(min_p);
  }
  if (flags.Has("logit-bias")) {
    for (absl::string_view entry : absl::StrSplit(flags.GetString("logit-bias", ""), ',', absl::SkipWhitespace())) {
      const std::vector<absl::string_view> parts = absl::StrSplit(entry, ':');
      int32_t id = 0;
      float bias = 0;
      if (parts.size() != 2 || !absl::SimpleAtoi(absl::StripAsciiWhitespace(parts[0]), &id) ||
          !absl::SimpleAtof(absl::StripAsciiWhitespace(parts[1]), &bias)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--logit-bias takes \"ID:BIAS,ID:BIAS\". Given the entry '", entry, "'"));
      }
      (*sampling.mutable_logit_bias())[id] = bias;
    }
  }
  if (flags.Has("logprobs")) {
    ASSIGN_OR_RETURN(const int32_t logprobs, GetInt32(flags, "logprobs", 0));
    sampling.set_logprobs(logprobs);
  }
  if (flags.Has("prompt-logprobs")) {
    ASSIGN_OR_RETURN(const int32_t logprobs, GetInt32(flags, "prompt-logprobs", 0));
    sampling.set_prompt_logprobs(logprobs);
  }
  {
    ASSIGN_OR_RETURN(const int32_t priority, GetInt32(flags, "priority", 0));
    request.set_priority(priority);
  }
  request.set_request_id(flags.GetString("request-id", ""));
  request.set_cache_salt(flags.GetString("cache-salt", ""));
  request.set_bypass_prefix_cache(flags.Has("bypass-prefix-cache"));
  return request;
}

// "logprob <label> <id> <logprob> top <id>:<logprob> ..." on stderr, one line a position.
void PrintLogprobs(absl::string_view label, const google::protobuf::RepeatedPtrField<v1::TokenLogprobs>& positions) {
  for (const v1::TokenLogprobs& position : positions) {
    std::string line = absl::StrFormat("logprob %s %d %.6g", label, position.token_id(), position.logprob());
    if (position.top_size() > 0) absl::StrAppend(&line, " top");
    for (const v1::TokenLogprob& top : position.top()) absl::StrAppendFormat(&line, " %d:%.6g", top.token_id(), top.logprob());
    std::cerr << line << "\n";
  }
}

// "1 shard", "3 shards".
std::string CountOf(int64_t n, absl::string_view singular, absl::string_view plural) {
  return absl::StrCat(n, " ", n == 1 ? singular : plural);
}

// "prefill: layers X/Y, N tokens over S shards" on stderr, X/Y as the server
// reports layers_done/layers_total: rewritten in place on a terminal, else at
// most one line a second (and always the last).
class PrefillProgressLine {
 public:
  PrefillProgressLine() : is_tty_(isatty(STDERR_FILENO) == 1) {}

  void Update(const v1::PrefillProgress& progress) {
    const std::string line =
        absl::StrFormat("prefill: layers %d/%d, %s over %s", progress.layers_done(), progress.layers_total(),
                        CountOf(progress.prompt_tokens(), "token", "tokens"), CountOf(progress.shards(), "shard", "shards"));
    const Clock::time_point now = Clock::now();
    if (is_tty_) {
      std::cerr << "\r" << line << "\033[K" << std::flush;
      line_open_ = true;
      return;
    }
    const bool last = progress.layers_done() >= progress.layers_total();
    if (printed_any_ && !last && now - last_printed_ < std::chrono::seconds(1)) return;
    std::cerr << line << "\n" << std::flush;
    printed_any_ = true;
    last_printed_ = now;
  }

  // Ends an in-place line before anything else goes to the terminal.
  void Close() {
    if (line_open_) std::cerr << "\n" << std::flush;
    line_open_ = false;
  }

 private:
  const bool is_tty_;
  bool line_open_ = false;
  bool printed_any_ = false;
  Clock::time_point last_printed_;
};

std::string FinishReasonName(v1::FinishReason reason) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::FinishReason_Name(reason), "FINISH_REASON_"));
}

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

bool IsLoopback(absl::string_view server) {
  absl::string_view host = server;
  if (absl::ConsumePrefix(&host, "[")) {
    host = host.substr(0, host.find(']'));
  } else if (const size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

// How to reach `server`, from the flags and the environment.
absl::StatusOr<ChannelSecurity> ResolveClientSecurity(const CliFlags& flags, const std::string& server) {
  const bool tls_asked = flags.Has("tls") || flags.Has("tls-ca") || flags.Has("tls-server-name");
  if (flags.Has("insecure")) {
    if (tls_asked) return absl::InvalidArgumentError("--insecure conflicts with --tls, --tls-ca and --tls-server-name");
    if (flags.Has("token-file")) {
      return absl::InvalidArgumentError("--token-file needs TLS: a token sent in plaintext is readable on the way");
    }
    return ChannelSecurity::Insecure();
  }
  ChannelSecurity security;
  if (flags.Has("token-file")) {
    const std::string path = flags.GetString("token-file", "");
    ASSIGN_OR_RETURN(const std::string contents, ReadFile(path));
    absl::StatusOr<std::vector<std::string>> tokens = ParseBearerTokens(contents);
    if (!tokens.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", tokens.status().message()));
    if (tokens->empty()) return absl::InvalidArgumentError(absl::StrCat(path, " holds no token"));
    security.bearer_token = tokens->front();
  } else if (const char* token = getenv(kTokenEnvironmentVariable); token != nullptr && *token != '\0') {
    security.bearer_token = std::string(absl::StripAsciiWhitespace(token));
  }
  if (!tls_asked && security.bearer_token.empty() && IsLoopback(server)) return ChannelSecurity::Insecure();
  if (flags.Has("tls-ca")) {
    ASSIGN_OR_RETURN(security.root_ca_pem, ReadPemFile(flags.GetString("tls-ca", ""), "the CA certificate"));
  }
  security.server_name = flags.GetString("tls-server-name", "");
  return security;
}

// Text from token ids needs the server's tokenizer: say so before generating.
absl::Status CheckServerHasTokenizer(v1::Tessera::Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ModelInfo info;
  RETURN_IF_ERROR(FromGrpcStatus(stub.GetModelInfo(&context, v1::GetModelInfoRequest(), &info)));
  if (info.tokenizer_path().empty()) {
    return absl::FailedPreconditionError("--print text: the server has no tokenizer (use --print ids)");
  }
  return absl::OkStatus();
}

absl::Status Generate(const std::string& server, const ChannelSecurity& security, const v1::GenerateRequest& request,
                      PrintMode print, double timeout_s) {
  std::unique_ptr<v1::Tessera::Stub> stub = v1::Tessera::NewStub(MakeChannel(server, security));
  if (print == PrintMode::kText && request.prompt_text().empty()) RETURN_IF_ERROR(CheckServerHasTokenizer(*stub));
  grpc::ClientContext context;
  const Clock::time_point start = Clock::now();
  if (timeout_s > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(
                             std::chrono::duration<double>(timeout_s)));
  }
  std::unique_ptr<grpc::ClientReader<v1::GenerateStreamResponse>> stream = stub->GenerateStream(&context, request);

  PrefillProgressLine progress_line;
  std::optional<Clock::time_point> first_token_at;
  std::optional<v1::GenerateResponse> finished;
  google::protobuf::RepeatedPtrField<v1::TokenLogprobs> logprobs;  // from the deltas
  int64_t tokens_printed = 0;
  std::string text_tail;  // the last character printed as text, for the final newline
  v1::GenerateStreamResponse event;
  while (stream->Read(&event)) {
    switch (event.event_case()) {
      case v1::GenerateStreamResponse::kProgress:
        progress_line.Update(event.progress());
        break;
      case v1::GenerateStreamResponse::kTokens:
        progress_line.Close();
        if (!first_token_at.has_value() && event.tokens().token_ids_size() > 0) first_token_at = Clock::now();
        logprobs.MergeFrom(event.tokens().logprobs());
        if (print == PrintMode::kText) {
          std::cout << event.tokens().text();
          if (!event.tokens().text().empty()) text_tail = event.tokens().text().back();
        } else {
          for (int32_t id : event.tokens().token_ids()) std::cout << (tokens_printed++ == 0 ? "" : " ") << id;
        }
        std::cout << std::flush;
        break;
      case v1::GenerateStreamResponse::kFinished:
        finished = event.finished();
        break;
      case v1::GenerateStreamResponse::EVENT_NOT_SET:
        break;
    }
  }
  const grpc::Status status = stream->Finish();
  const Clock::time_point end = Clock::now();
  progress_line.Close();
  if (tokens_printed > 0) std::cout << "\n" << std::flush;
  // Text goes out byte for byte; only a terminal gets a newline to end it.
  if (!text_tail.empty() && text_tail != "\n" && isatty(STDOUT_FILENO) == 1) std::cout << "\n" << std::flush;
  RETURN_IF_ERROR(FromGrpcStatus(status));
  if (!finished.has_value()) return absl::InternalError("the server ended the stream without a summary");

  const v1::Usage& usage = finished->usage();
  std::string summary = absl::StrFormat("finished: %s; usage: prompt %d, completion %d, total %s; %s",
                                        FinishReasonName(finished->finish_reason()), usage.prompt_tokens(),
                                        usage.completion_tokens(), CountOf(usage.total_tokens(), "token", "tokens"),
                                        CountOf(finished->shards(), "shard", "shards"));
  if (first_token_at.has_value()) {
    absl::StrAppendFormat(&summary, "; first token after %.3f s", SecondsBetween(start, *first_token_at));
    const double decode_s = SecondsBetween(*first_token_at, end);
    if (usage.completion_tokens() > 1 && decode_s > 0) {
      absl::StrAppendFormat(&summary, "; %.1f tokens/s", (usage.completion_tokens() - 1) / decode_s);
    }
  }
  absl::StrAppendFormat(&summary, "; %.3f s in all", SecondsBetween(start, end));
  if (usage.cached_prompt_tokens() > 0) {
    absl::StrAppendFormat(&summary, "; %d prompt tokens from the prefix cache", usage.cached_prompt_tokens());
  }
  PrintLogprobs("prompt", finished->prompt_logprobs());
  PrintLogprobs("token", logprobs);
  std::cerr << summary << "\n";
  return absl::OkStatus();
}

int UsageError(absl::string_view message) {
  std::cerr << "tessera generate: " << message << "\n\n" << FlagsUsage("generate", kSummary, kGenerateFlags);
  return 2;
}

int CallError(const absl::Status& status) {
  std::cerr << "tessera generate: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
  return 1;
}

}  // namespace

int RunGenerateCommand(int argc, char** argv) {
  absl::StatusOr<CliFlags> flags = CliFlags::Parse(argc, argv, kGenerateFlags);
  if (!flags.ok()) return UsageError(flags.status().message());
  if (flags->help()) {
    std::cout << FlagsUsage("generate", kSummary, kGenerateFlags);
    return 0;
  }
  absl::StatusOr<std::string> server = flags->RequireString("server");
  if (!server.ok()) return UsageError(server.status().message());
  absl::StatusOr<double> timeout_s = flags->GetDouble("timeout-s", 0);
  if (timeout_s.ok() && (!std::isfinite(*timeout_s) || *timeout_s < 0)) {
    timeout_s = absl::InvalidArgumentError(absl::StrCat("--timeout-s must be >= 0. Given: ", *timeout_s));
  }
  if (!timeout_s.ok()) return UsageError(timeout_s.status().message());
  absl::StatusOr<v1::GenerateRequest> request = BuildRequest(*flags);
  if (!request.ok()) {
    if (absl::IsInvalidArgument(request.status())) return UsageError(request.status().message());
    return CallError(request.status());
  }
  absl::StatusOr<PrintMode> print = ResolvePrintMode(*flags, *request);
  if (!print.ok()) return UsageError(print.status().message());
  absl::StatusOr<ChannelSecurity> security = ResolveClientSecurity(*flags, *server);
  if (!security.ok()) {
    if (absl::IsInvalidArgument(security.status())) return UsageError(security.status().message());
    return CallError(security.status());
  }
  absl::Status status = Generate(*server, *security, *request, *print, *timeout_s);
  if (absl::IsUnavailable(status) && security->insecure && !flags->Has("insecure")) {
    status = absl::UnavailableError(absl::StrCat(status.message(), " (plaintext to a loopback server; if it serves "
                                                                    "TLS, give --tls-ca and --token-file)"));
  }
  return status.ok() ? 0 : CallError(status);
}

}  // namespace tessera
