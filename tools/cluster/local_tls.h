// Throwaway TLS material for a cluster on 127.0.0.1 (`tessera local --tls`,
// and the tests that attack one): a CA, one member certificate that the
// coordinator and every worker present as server and as client, and a bearer
// token. Made by the `openssl` command-line tool (Debian package openssl):
// P-256 keys, 7 days, the member certificate for IP:127.0.0.1, DNS:localhost
// and DNS:tessera-internal. No cryptography here beyond running it.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace tessera {

struct LocalTlsFiles {
  std::string dir;
  std::string ca_cert;  // DIR/ca.crt: what clients trust (--tls-ca)
  std::string ca_key;   // DIR/ca.key
  std::string cert;     // DIR/tls.crt: the cluster member certificate (--tls-cert)
  std::string key;      // DIR/tls.key (--tls-key)
  std::string tokens;   // DIR/tokens: one token after a comment (--auth-tokens-file, and a client's --token-file)
  std::string token;    // the token itself
};

// Writes the files into `dir` (created 0700 if missing; files there of the
// same names are replaced). Keys are 0600.
absl::StatusOr<LocalTlsFiles> GenerateLocalTls(const std::string& dir);

// `name` found in $PATH, as an absolute path.
absl::StatusOr<std::string> FindInPath(const std::string& name);

}  // namespace tessera
