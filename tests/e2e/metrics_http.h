// One scrape of a process's Prometheus /metrics endpoint over plain HTTP/1.0
// on 127.0.0.1, for the e2e tests that read metrics (metrics_test, load_test).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/match.h"

namespace tessera::e2e {

inline // GET http://127.0.0.1:PORT/metrics with HTTP/1.0 (the server closes the
// connection after the body: read to EOF). Empty on any failure.
std::string HttpGetMetrics(const std::string& address) {
  const std::string port = address.substr(address.rfind(':') + 1);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in server = {};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<uint16_t>(std::atoi(port.c_str())));
  inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof(server)) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[8192];
      ssize_t got;
      while ((got = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, static_cast<size_t>(got));
    }
  }
  close(fd);
  if (!absl::StartsWith(response, "HTTP/1.") || response.find(" 200 ") == std::string::npos) return "";
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

}  // namespace tessera::e2e
