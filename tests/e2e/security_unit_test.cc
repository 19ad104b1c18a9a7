// rpc/grpc_security in process, with throwaway certificates from openssl:
// the tokens file's format, BearerTokenAuth on a real TLS server (missing,
// wrong, right, rotated tokens; health open; the token never reaches the
// handler), and mutual TLS refusing clients without the cluster's
// certificate. Fast: no model, one server per test on 127.0.0.1.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "rpc/grpc_security.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tests/e2e/health_client.h"
#include "tools/cluster/local_tls.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

TEST(BearerTokensTest, ParsesCommentsBlanksAndWhitespace) {
  absl::StatusOr<std::vector<std::string>> tokens =
      ParseBearerTokens("# rotation 2024-06\n\n  0123456789abcdef0123 \n\t# old\nabcdefABCDEF-_.~+/=0123\n");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_THAT(*tokens, ::testing::ElementsAre("0123456789abcdef0123", "abcdefABCDEF-_.~+/=0123"));
  EXPECT_TRUE(ParseBearerTokens("# only a comment\n")->empty());
}

TEST(BearerTokensTest, ErrorsNameTheLineNeverTheToken) {
  absl::StatusOr<std::vector<std::string>> short_token = ParseBearerTokens("# c\nshort-secret\n");
  ASSERT_FALSE(short_token.ok());
  EXPECT_THAT(short_token.status().message(), HasSubstr("line 2"));
  EXPECT_THAT(short_token.status().message(), ::testing::Not(HasSubstr("short-secret")));
  absl::StatusOr<std::vector<std::string>> spaced = ParseBearerTokens("0123456789 abcdef0123456789\n");
  ASSERT_FALSE(spaced.ok());
  EXPECT_THAT(spaced.status().message(), ::testing::Not(HasSubstr("0123456789")));
}

// A Tessera service whose GetModelInfo reports whether the handler saw any
// authorization metadata (in model_type).
class EchoAuthService final : public v1::Tessera::Service {
 public:
  grpc::Status GetModelInfo(grpc::ServerContext* context, const v1::GetModelInfoRequest*,
                            v1::ModelInfo* info) override {
    info->set_model_type(context->client_metadata().count("authorization") > 0 ? "saw a token" : "no token seen");
    return grpc::Status::OK;
  }
};

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/security-unit.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    absl::StatusOr<LocalTlsFiles> files = GenerateLocalTls(dir_ + "/cluster");
    ASSERT_TRUE(files.ok()) << files.status();
    files_ = *files;
    absl::StatusOr<LocalTlsFiles> rogue = GenerateLocalTls(dir_ + "/rogue");
    ASSERT_TRUE(rogue.ok()) << rogue.status();
    rogue_ = *rogue;
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
    std::filesystem::remove_all(dir_);
  }

  std::string Pem(const std::string& path) { return *ReadPemFile(path, "test file"); }

  void Serve(const ServerSecurity& security) {
    grpc::ServerBuilder builder;
    int port = 0;
    ConfigureServerBuilder(builder, "127.0.0.1:0", security, &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
  }

  // GetModelInfo's code, and what the handler saw in `seen`.
  grpc::StatusCode Call(const ChannelSecurity& security, std::string* seen = nullptr) {
    auto stub = v1::Tessera::NewStub(MakeChannel(address_, security));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ModelInfo info;
    const grpc::Status status = stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
    if (seen != nullptr) *seen = status.ok() ? info.model_type() : status.error_message();
    return status.error_code();
  }

  std::string dir_;
  LocalTlsFiles files_, rogue_;
  EchoAuthService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(SecurityTest, PublicApiTakesOnlyKnownTokensOverTls) {
  absl::StatusOr<std::shared_ptr<BearerTokenAuth>> auth = BearerTokenAuth::FromFile(files_.tokens);
  ASSERT_TRUE(auth.ok()) << auth.status();
  ServerSecurity server;
  server.identity = {Pem(files_.cert), Pem(files_.key)};
  server.auth = *auth;
  Serve(server);

  ChannelSecurity client;
  client.root_ca_pem = Pem(files_.ca_cert);
  std::string seen;
  EXPECT_EQ(Call(client, &seen), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(seen, HasSubstr("missing bearer token"));
  client.bearer_token = "fedcba9876543210fedcba9876543210";
  EXPECT_EQ(Call(client, &seen), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(seen, "unknown bearer token");
  client.bearer_token = files_.token;
  EXPECT_EQ(Call(client, &seen), grpc::StatusCode::OK);
  EXPECT_EQ(seen, "no token seen") << "the processor consumes the token: handlers never see it";
  EXPECT_EQ(Call(ChannelSecurity::Insecure()), grpc::StatusCode::UNAVAILABLE) << "plaintext to a TLS port";

  ChannelSecurity no_token;
  no_token.root_ca_pem = Pem(files_.ca_cert);
  EXPECT_EQ(HealthCheck(MakeChannel(address_, no_token)), "SERVING") << "health checks need no token";
  ChannelSecurity other_ca;
  other_ca.root_ca_pem = Pem(rogue_.ca_cert);
  other_ca.bearer_token = files_.token;
  EXPECT_EQ(Call(other_ca), grpc::StatusCode::UNAVAILABLE) << "the client verifies the server";
}

TEST_F(SecurityTest, RotatedTokensTakeEffectWithoutARestart) {
  const std::string path = dir_ + "/rotating";
  const std::string old_token = "old-token-0123456789abcdef";
  const std::string new_token = "new-token-0123456789abcdef";
  std::ofstream(path) << old_token << "\n";
  absl::StatusOr<std::shared_ptr<BearerTokenAuth>> auth = BearerTokenAuth::FromFile(path);
  ASSERT_TRUE(auth.ok()) << auth.status();
  ServerSecurity server;
  server.identity = {Pem(files_.cert), Pem(files_.key)};
  server.auth = *auth;
  Serve(server);
  ChannelSecurity client;
  client.root_ca_pem = Pem(files_.ca_cert);
  client.bearer_token = old_token;
  EXPECT_EQ(Call(client), grpc::StatusCode::OK);

  // As a Kubernetes Secret volume rotates: a new file swapped in.
  std::ofstream(path + ".next") << "# rotated\n" << new_token << "\n";
  std::filesystem::rename(path + ".next", path);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(Call(client), grpc::StatusCode::UNAUTHENTICATED) << "the old token is gone";
  client.bearer_token = new_token;
  EXPECT_EQ(Call(client), grpc::StatusCode::OK);

  // A broken file keeps the tokens in use.
  std::ofstream(path + ".next") << "short\n";
  std::filesystem::rename(path + ".next", path);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(Call(client), grpc::StatusCode::OK);
  EXPECT_EQ((*auth)->token_count(), 1u);
}

TEST_F(SecurityTest, MutualTlsRefusesClientsWithoutTheClusterCertificate) {
  absl::StatusOr<InternalSecurity> cluster = LoadClusterSecurity(files_.cert, files_.key, files_.ca_cert, "");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Serve(cluster->server);
  EXPECT_EQ(Call(cluster->channel), grpc::StatusCode::OK);

  ChannelSecurity no_certificate;
  no_certificate.root_ca_pem = Pem(files_.ca_cert);
  EXPECT_EQ(Call(no_certificate), grpc::StatusCode::UNAVAILABLE);
  ChannelSecurity rogue = no_certificate;
  rogue.identity = {Pem(rogue_.cert), Pem(rogue_.key)};
  EXPECT_EQ(Call(rogue), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Call(ChannelSecurity::Insecure()), grpc::StatusCode::UNAVAILABLE);

  // The shared name instead of the dialled host: the certificate carries
  // DNS:tessera-internal.
  ChannelSecurity named = cluster->channel;
  named.server_name = "tessera-internal";
  EXPECT_EQ(Call(named), grpc::StatusCode::OK);
  named.server_name = "someone-else";
  EXPECT_EQ(Call(named), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityTest, UnusableFilesAreErrorsAtStart) {
  EXPECT_FALSE(LoadClusterSecurity(files_.key, files_.key, files_.ca_cert, "").ok()) << "a key as certificate";
  EXPECT_FALSE(LoadClusterSecurity(files_.cert, files_.cert, files_.ca_cert, "").ok()) << "a certificate as key";
  EXPECT_FALSE(LoadClusterSecurity(files_.cert, files_.key, dir_ + "/none", "").ok());
  std::ofstream(dir_ + "/empty-tokens") << "# nothing yet\n";
  absl::StatusOr<std::shared_ptr<BearerTokenAuth>> empty = BearerTokenAuth::FromFile(dir_ + "/empty-tokens");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("holds no token"));
}

}  // namespace
}  // namespace tessera
