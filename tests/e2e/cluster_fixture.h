// Shared pieces of the end-to-end tests: start a real local cluster of
// `tessera` processes on 127.0.0.1 (plaintext: the launcher passes
// --insecure; security_test.cc runs one with TLS), call it over gRPC, and read
// references.
#pragma once

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rpc/grpc_security.h"
#include "rpc/grpc_util.h"
#include "tessera/v1/tessera.grpc.pb.h"
#include "tools/cluster/local_cluster.h"
#include "model/safetensors.h"

namespace tessera {

inline std::string FixtureDir(const std::string& name) {
  return std::string(TESSERA_TEST_DATA_DIR) + "/hf-tiny/" + name;
}

// Where StartCluster logs: one file per test process, so tests that ctest
// runs in parallel on the same fixture never share (or delete) one log.
inline std::string ClusterLogPath(const std::string& fixture) {
  return absl::StrCat(::testing::TempDir(), "/tessera_e2e_", fixture, "_", getpid(), ".log");
}

inline std::unique_ptr<LocalCluster> StartCluster(const std::string& fixture, int workers,
                                                  std::vector<std::string> coordinator_flags = {},
                                                  std::vector<std::string> worker_flags = {}) {
  LocalClusterOptions options;
  options.binary = TESSERA_BINARY;
  options.model_dir = FixtureDir(fixture);
  options.workers = workers;
  options.security = LocalClusterSecurity();  // plaintext on loopback: --insecure to both roles
  options.coordinator_flags = std::move(coordinator_flags);
  options.worker_flags = std::move(worker_flags);
  options.log_path = ClusterLogPath(fixture);
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  EXPECT_TRUE(cluster.ok()) << cluster.status();
  return cluster.ok() ? *std::move(cluster) : nullptr;
}

inline std::unique_ptr<tessera::v1::Tessera::Stub> ClientFor(const LocalCluster& cluster) {
  return tessera::v1::Tessera::NewStub(MakeChannel(cluster.address(), cluster.client_security()));
}

inline std::vector<int32_t> ReferencePrompt(const std::string& fixture, int64_t length) {
  auto file = SafetensorsFile::Open(FixtureDir(fixture) + "/reference.safetensors");
  std::vector<int64_t> ids = *ReadInt64(**file, "input_ids.200");
  return std::vector<int32_t>(ids.begin(), ids.begin() + length);
}

inline tessera::v1::GenerateRequest GreedyRequest(const std::vector<int32_t>& prompt, int max_new_tokens) {
  tessera::v1::GenerateRequest request;
  request.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
  request.mutable_stopping()->set_max_new_tokens(max_new_tokens);
  request.mutable_stopping()->set_ignore_eos(true);
  return request;
}

}  // namespace tessera
