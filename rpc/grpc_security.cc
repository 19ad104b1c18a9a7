// gRPC's SSL credentials do the cryptography; this file only decides which
// certificates each end presents and trusts, and checks bearer tokens.
#include "rpc/grpc_security.h"

#include <sys/stat.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "rpc/grpc_util.h"

namespace tessera {
namespace {

constexpr size_t kMinTokenChars = 16;
constexpr size_t kMaxTokenChars = 4096;
constexpr auto kTokenFileCheckInterval = std::chrono::seconds(1);
constexpr absl::string_view kHealthPathPrefix = "/grpc.health.v1.Health/";

InternalSecurity& MutableInternalSecurity() {
  static InternalSecurity* security =
      new InternalSecurity{ServerSecurity::Insecure(), ChannelSecurity::Insecure()};
  return *security;
}

void EnableStandardServices() {
  static const bool once = [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    return true;
  }();
  (void)once;
}

// Equal strings take the same time whatever their contents.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

ServerSecurity ServerSecurity::Insecure() {
  ServerSecurity security;
  security.insecure = true;
  return security;
}

ChannelSecurity ChannelSecurity::Insecure() {
  ChannelSecurity security;
  security.insecure = true;
  return security;
}

absl::StatusOr<std::string> ReadPemFile(const std::string& path, absl::string_view what) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat("no file given for ", what));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string pem = contents.str();
  if (!absl::StrContains(pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, " is not PEM (no '-----BEGIN ' line)"));
  }
  return pem;
}

absl::StatusOr<InternalSecurity> LoadClusterSecurity(const std::string& cert_path, const std::string& key_path,
                                                     const std::string& ca_path, const std::string& server_name) {
  TlsIdentity identity;
  absl::StatusOr<std::string> cert = ReadPemFile(cert_path, "the cluster certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPemFile(key_path, "the cluster key");
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> ca = ReadPemFile(ca_path, "the cluster CA");
  if (!ca.ok()) return ca.status();
  if (!absl::StrContains(*cert, "CERTIFICATE-----")) {
    return absl::InvalidArgumentError(absl::StrCat("the cluster certificate ", cert_path, " holds no certificate"));
  }
  if (!absl::StrContains(*key, "PRIVATE KEY-----")) {
    return absl::InvalidArgumentError(absl::StrCat("the cluster key ", key_path, " holds no private key"));
  }
  identity.cert_chain_pem = *std::move(cert);
  identity.private_key_pem = *std::move(key);

  InternalSecurity security;
  security.server.identity = identity;
  security.server.client_ca_pem = *ca;
  security.channel.identity = identity;
  security.channel.root_ca_pem = *ca;
  security.channel.server_name = server_name;
  return security;
}

void SetInternalSecurity(InternalSecurity security) { MutableInternalSecurity() = std::move(security); }

const InternalSecurity& GetInternalSecurity() { return MutableInternalSecurity(); }

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const ServerSecurity& security) {
  if (security.insecure) return grpc::InsecureServerCredentials();
  const bool mutual = !security.client_ca_pem.empty();
  grpc::SslServerCredentialsOptions options(mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_root_certs = security.client_ca_pem;
  options.pem_key_cert_pairs.push_back({security.identity.private_key_pem, security.identity.cert_chain_pem});
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::SslServerCredentials(options);
  if (security.auth != nullptr) credentials->SetAuthMetadataProcessor(security.auth);
  return credentials;
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const ChannelSecurity& security) {
  if (security.insecure) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = security.root_ca_pem;
  options.pem_cert_chain = security.identity.cert_chain_pem;
  options.pem_private_key = security.identity.private_key_pem;
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::SslCredentials(options);
  if (!security.bearer_token.empty()) {
    credentials = grpc::CompositeChannelCredentials(credentials, grpc::AccessTokenCredentials(security.bearer_token));
  }
  return credentials;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const ChannelSecurity& security) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
  args.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
  // Fail fast and reconnect quickly when a peer restarts.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (!security.insecure && !security.server_name.empty()) args.SetSslTargetNameOverride(security.server_name);
  return grpc::CreateCustomChannel(address, MakeChannelCredentials(security), args);
}

std::shared_ptr<grpc::Channel> MakeInternalChannel(const std::string& address) {
  return MakeChannel(address, GetInternalSecurity().channel);
}

void ConfigureServerBuilder(grpc::ServerBuilder& builder, const std::string& listen_address,
                            const ServerSecurity& security, int* selected_port) {
  EnableStandardServices();
  // A taken port must be an error, not silently shared with another process.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(listen_address, MakeServerCredentials(security), selected_port);
  builder.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
  builder.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartHealthOnlyServer(const std::string& host, int port,
                                                                     int* selected_port) {
  EnableStandardServices();
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  const std::string address = absl::StrCat(host, ":", port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), selected_port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *selected_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve health checks on ", address));
  }
  return server;
}

absl::StatusOr<std::vector<std::string>> ParseBearerTokens(absl::string_view text) {
  std::vector<std::string> tokens;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    if (line.size() < kMinTokenChars || line.size() > kMaxTokenChars) {
      return absl::InvalidArgumentError(absl::StrCat("the token on line ", line_number, " has ", line.size(),
                                                     " characters; a token must have ", kMinTokenChars, " to ",
                                                     kMaxTokenChars));
    }
    for (char c : line) {
      if (c <= ' ' || c > '~') {
        return absl::InvalidArgumentError(absl::StrCat(
            "the token on line ", line_number, " holds a space or a character that is not printable ASCII"));
      }
    }
    tokens.emplace_back(line);
  }
  return tokens;
}

namespace {

struct TokenFile {
  std::vector<std::string> tokens;
  long long inode = 0, size = 0, mtime_ns = 0;
};

absl::StatusOr<TokenFile> ReadTokenFile(const std::string& path) {
  TokenFile file;
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return absl::NotFoundError(absl::StrCat("cannot read the tokens file ", path));
  file.inode = static_cast<long long>(info.st_ino);
  file.size = static_cast<long long>(info.st_size);
  file.mtime_ns = static_cast<long long>(info.st_mtim.tv_sec) * 1000000000LL + info.st_mtim.tv_nsec;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the tokens file ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  absl::StatusOr<std::vector<std::string>> tokens = ParseBearerTokens(contents.str());
  if (!tokens.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", tokens.status().message()));
  if (tokens->empty()) return absl::InvalidArgumentError(absl::StrCat("the tokens file ", path, " holds no token"));
  file.tokens = *std::move(tokens);
  return file;
}

}  // namespace

absl::StatusOr<std::shared_ptr<BearerTokenAuth>> BearerTokenAuth::FromFile(const std::string& path) {
  absl::StatusOr<TokenFile> file = ReadTokenFile(path);
  if (!file.ok()) return file.status();
  std::shared_ptr<BearerTokenAuth> auth(new BearerTokenAuth(path));
  auth->tokens_ = std::move(file->tokens);
  auth->stamp_ = {file->inode, file->size, file->mtime_ns};
  auth->last_check_ = std::chrono::steady_clock::now();
  return auth;
}

size_t BearerTokenAuth::token_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_.size();
}

void BearerTokenAuth::ReloadIfChanged() {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (now - last_check_ < kTokenFileCheckInterval) return;
    last_check_ = now;
  }
  struct stat info;
  if (stat(path_.c_str(), &info) != 0) return;  // mid-rotation (a Secret's symlink swap): keep the tokens we have
  const FileStamp stamp = {static_cast<long long>(info.st_ino), static_cast<long long>(info.st_size),
                           static_cast<long long>(info.st_mtim.tv_sec) * 1000000000LL + info.st_mtim.tv_nsec};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stamp == stamp_) return;
  }
  absl::StatusOr<TokenFile> file = ReadTokenFile(path_);
  std::lock_guard<std::mutex> lock(mu_);
  if (!file.ok()) {
    stamp_ = stamp;  // say it once per change, not once a call
    std::cerr << "tokens: keeping the " << tokens_.size() << " tokens in use: " << file.status().message() << "\n";
    return;
  }
  tokens_ = std::move(file->tokens);
  stamp_ = {file->inode, file->size, file->mtime_ns};
  std::cerr << "tokens: reloaded " << path_ << ": " << tokens_.size() << " tokens\n";
}

bool BearerTokenAuth::Known(absl::string_view token) const {
  std::lock_guard<std::mutex> lock(mu_);
  bool known = false;
  for (const std::string& candidate : tokens_) known |= ConstantTimeEquals(candidate, token);
  return known;
}

absl::Status BearerTokenAuth::Authorize(std::optional<absl::string_view> authorization) {
  ReloadIfChanged();
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError("missing bearer token: send the header 'authorization: Bearer <token>'");
  }
  absl::string_view token = *authorization;
  if (!absl::ConsumePrefix(&token, "Bearer ") && !absl::ConsumePrefix(&token, "bearer ")) {
    return absl::UnauthenticatedError("the authorization header is not 'Bearer <token>'");
  }
  token = absl::StripAsciiWhitespace(token);
  if (!Known(token)) return absl::UnauthenticatedError("unknown bearer token");
  return absl::OkStatus();
}

grpc::Status BearerTokenAuth::Process(const InputMetadata& auth_metadata, grpc::AuthContext*,
                                      OutputMetadata* consumed_auth_metadata, OutputMetadata*) {
  const auto path = auth_metadata.find(":path");
  if (path != auth_metadata.end() &&
      absl::StartsWith(absl::string_view(path->second.data(), path->second.size()), kHealthPathPrefix)) {
    return grpc::Status::OK;
  }
  const auto header = auth_metadata.find("authorization");
  std::optional<absl::string_view> value;
  if (header != auth_metadata.end()) value = absl::string_view(header->second.data(), header->second.size());
  if (const absl::Status status = Authorize(value); !status.ok()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(status.message()));
  }
  consumed_auth_metadata->insert({"authorization", std::string(*value)});
  return grpc::Status::OK;
}

}  // namespace tessera
