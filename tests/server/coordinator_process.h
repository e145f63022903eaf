// A real kvplan-coordinator process for tests: started on 127.0.0.1 port 0,
// its bound ports read from its stdout, killed with any signal; and the
// checks of its /metrics endpoint (a plain HTTP GET, promtool).
#ifndef KVPLAN_TESTS_SERVER_COORDINATOR_PROCESS_H_
#define KVPLAN_TESTS_SERVER_COORDINATOR_PROCESS_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "tests/common/child_process.h"

namespace kvplan::testing {

class CoordinatorProcess {
 public:
  // Starts the binary with `args` and waits (up to 30 s) for "listening on"
  // (and "metrics on" when --metrics-listen is given). ok() says whether it
  // came up; output() has what it printed.
  explicit CoordinatorProcess(const std::vector<std::string>& args)
      : child_(BinaryPath("kvplan-coordinator"), args) {
    const bool want_metrics = std::find(args.begin(), args.end(), "--metrics-listen") != args.end();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string& out = child_.output();
      if (ParseLine(out, "listening on ", &address_) &&
          (!want_metrics || ParseLine(out, "metrics on ", &metrics_address_))) {
        return;
      }
      address_.clear();
      if (child_.Wait(std::chrono::milliseconds(50)).has_value()) return;  // Exited early.
    }
  }

  bool ok() const { return !address_.empty(); }
  const std::string& address() const { return address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  std::string output() { return child_.output(); }

  // Sends `signal` and waits; returns the exit status (128 + signal if killed).
  int Stop(int signal) { return child_.Kill(signal); }

 private:
  // The rest of the line after `prefix`, once the whole line has been printed.
  static bool ParseLine(const std::string& text, const std::string& prefix, std::string* out) {
    const size_t at = text.find(prefix);
    if (at == std::string::npos) return false;
    const size_t end = text.find('\n', at);
    if (end == std::string::npos) return false;
    *out = text.substr(at + prefix.size(), end - at - prefix.size());
    return true;
  }

  ChildProcess child_;
  std::string address_;
  std::string metrics_address_;
};

// GET http://address/path over a plain socket; the response body ("" on failure).
inline std::string HttpGet(const std::string& address, const std::string& path) {
  const size_t colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string request =
      "GET " + path + " HTTP/1.0\r\nHost: " + address + "\r\nConnection: close\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0)
    response.append(buffer, static_cast<size_t>(n));
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// Whether Prometheus's promtool is on the PATH.
inline bool HavePromtool() { return std::system("command -v promtool > /dev/null 2>&1") == 0; }

// `promtool check metrics` over a /metrics exposition, written to
// `scratch_file` first. nullopt when promtool is not installed (Debian package
// 'prometheus'; deploy/install-deps.sh installs it): callers skip with a
// message that says so, after checking everything else.
inline std::optional<RunResult> PromtoolCheckMetrics(const std::string& exposition,
                                                     const std::string& scratch_file) {
  if (!HavePromtool()) return std::nullopt;
  std::ofstream(scratch_file, std::ios::binary | std::ios::trunc) << exposition;
  return RunShell("promtool check metrics < " + scratch_file);
}

inline constexpr char kPromtoolMissing[] =
    "promtool not installed (Debian package 'prometheus'; deploy/install-deps.sh installs it); "
    "the scrape was checked without it";

}  // namespace kvplan::testing

#endif  // KVPLAN_TESTS_SERVER_COORDINATOR_PROCESS_H_
