// Each step is one `openssl` run with an argv (no shell), its stderr kept in
// DIR/openssl.log so that a failure can say why; the extensions come from a
// config file written here, so the system's openssl.cnf does not matter.
#include "tools/cluster/local_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "tools/cluster/child_process.h"

namespace tessera {
namespace {

constexpr char kOpensslConfig[] = R"(# Written by tessera local --tls.
[req]
distinguished_name = dn
prompt = no
[dn]
CN = tessera-internal
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[member_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:tessera-internal
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
)";

constexpr auto kStepTimeout = std::chrono::seconds(30);

absl::Status WriteFile(const std::string& path, const std::string& contents, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  fchmod(fd, mode);
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return absl::FailedPreconditionError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return absl::OkStatus();
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// Runs openssl with `args`; stdout to `stdout_path` when given.
absl::Status RunOpenssl(const std::string& openssl, const std::string& dir, std::vector<std::string> args,
                        const std::string& stdout_path = "") {
  const std::string log_path = dir + "/openssl.log";
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0) return absl::FailedPreconditionError(absl::StrCat("cannot write ", log_path, ": ", strerror(errno)));
  int out_fd = -1;
  if (!stdout_path.empty()) {
    out_fd = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out_fd < 0) {
      close(log_fd);
      return absl::FailedPreconditionError(absl::StrCat("cannot write ", stdout_path, ": ", strerror(errno)));
    }
  }
  args.insert(args.begin(), openssl);
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn({.argv = args, .stdout_fd = out_fd >= 0 ? out_fd : log_fd, .stderr_fd = log_fd});
  close(log_fd);
  if (out_fd >= 0) close(out_fd);
  if (!child.ok()) return child.status();
  const auto deadline = std::chrono::steady_clock::now() + kStepTimeout;
  while ((*child)->Poll()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      (*child)->KillAndReap();
      return absl::DeadlineExceededError(absl::StrCat("openssl ", args[1], " took over 30 s"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int status = *(*child)->wait_status();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("openssl ", args[1], " ", DescribeWaitStatus(status), ": ",
                                            absl::StripAsciiWhitespace(ReadFileOrEmpty(log_path))));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> FindInPath(const std::string& name) {
  const char* path = getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrCat("no ", name, " in $PATH (Debian: apt-get install ", name, ")"));
}

absl::StatusOr<LocalTlsFiles> GenerateLocalTls(const std::string& dir) {
  ASSIGN_OR_RETURN(const std::string openssl, FindInPath("openssl"));
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create ", dir, ": ", strerror(errno)));
  }
  LocalTlsFiles files;
  files.dir = dir;
  files.ca_cert = dir + "/ca.crt";
  files.ca_key = dir + "/ca.key";
  files.cert = dir + "/tls.crt";
  files.key = dir + "/tls.key";
  files.tokens = dir + "/tokens";
  const std::string config = dir + "/openssl.cnf";
  const std::string request = dir + "/tls.csr";
  const std::string serial = dir + "/ca.srl";
  RETURN_IF_ERROR(WriteFile(config, kOpensslConfig, 0600));
  const std::vector<std::string> new_p256_key = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"};

  std::vector<std::string> ca = {"req", "-x509", "-config", config, "-extensions", "ca_ext"};
  ca.insert(ca.end(), new_p256_key.begin(), new_p256_key.end());
  ca.insert(ca.end(), {"-keyout", files.ca_key, "-out", files.ca_cert, "-days", "7", "-subj", "/CN=Tessera local CA"});
  RETURN_IF_ERROR(RunOpenssl(openssl, dir, ca));

  std::vector<std::string> member = {"req", "-new", "-config", config};
  member.insert(member.end(), new_p256_key.begin(), new_p256_key.end());
  member.insert(member.end(), {"-keyout", files.key, "-out", request, "-subj", "/CN=tessera-internal"});
  RETURN_IF_ERROR(RunOpenssl(openssl, dir, member));
  RETURN_IF_ERROR(RunOpenssl(openssl, dir,
                             {"x509", "-req", "-in", request, "-CA", files.ca_cert, "-CAkey", files.ca_key,
                              "-CAcreateserial", "-CAserial", serial, "-days", "7", "-extfile", config, "-extensions",
                              "member_ext", "-out", files.cert}));
  for (const std::string& key : {files.ca_key, files.key}) chmod(key.c_str(), 0600);

  const std::string token_path = dir + "/token.tmp";
  RETURN_IF_ERROR(RunOpenssl(openssl, dir, {"rand", "-hex", "32"}, token_path));
  files.token = std::string(absl::StripAsciiWhitespace(ReadFileOrEmpty(token_path)));
  unlink(token_path.c_str());
  if (files.token.size() != 64) return absl::InternalError("openssl rand -hex 32 printed no 64-digit token");
  RETURN_IF_ERROR(WriteFile(files.tokens,
                            absl::StrCat("# Bearer tokens of the public API (tessera local --tls): one per line.\n",
                                         files.token, "\n"),
                            0600));
  for (const std::string& scratch : {request, serial, config, dir + "/openssl.log"}) unlink(scratch.c_str());
  return files;
}

}  // namespace tessera
