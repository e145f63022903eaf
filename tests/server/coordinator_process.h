// A real kvplan-coordinator process for tests: started on 127.0.0.1 port 0,
// its bound ports read from its stdout, killed with any signal.
#ifndef KVPLAN_TESTS_SERVER_COORDINATOR_PROCESS_H_
#define KVPLAN_TESTS_SERVER_COORDINATOR_PROCESS_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace kvplan::testing {

class CoordinatorProcess {
 public:
  // Starts the binary with `args` and waits (up to 30 s) for "listening on".
  // ok() says whether it came up; output() has what it printed.
  explicit CoordinatorProcess(const std::vector<std::string>& args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
      close(fds[0]);
      std::vector<std::string> all = {std::string(KVPLAN_BINARY_DIR) + "/bin/kvplan-coordinator"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (std::string& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_fd_ = fds[0];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      ReadSome(100);
      if (ParsePort("listening on ", &address_)) {
        ParsePort("metrics on ", &metrics_address_);
        if (args_want_metrics(args) && metrics_address_.empty()) continue;
        return;
      }
    }
  }
  ~CoordinatorProcess() {
    if (pid_ > 0 && !waited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
  }

  bool ok() const { return !address_.empty(); }
  const std::string& address() const { return address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  std::string output() {
    ReadSome(0);
    return output_;
  }

  // Sends `signal` and waits; returns the exit status (128 + signal if killed).
  int Stop(int signal) {
    kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    waited_ = true;
    ReadSome(0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  static bool args_want_metrics(const std::vector<std::string>& args) {
    for (const std::string& a : args) {
      if (a == "--metrics-listen") return true;
    }
    return false;
  }
  void ReadSome(int timeout_ms) {
    pollfd p{.fd = out_fd_, .events = POLLIN, .revents = 0};
    while (poll(&p, 1, timeout_ms) > 0) {
      char buffer[4096];
      const ssize_t n = read(out_fd_, buffer, sizeof(buffer));
      if (n <= 0) break;
      output_.append(buffer, static_cast<size_t>(n));
      timeout_ms = 0;
    }
  }
  bool ParsePort(const std::string& prefix, std::string* out) const {
    const size_t at = output_.find(prefix);
    if (at == std::string::npos) return false;
    const size_t end = output_.find('\n', at);
    if (end == std::string::npos) return false;
    *out = output_.substr(at + prefix.size(), end - at - prefix.size());
    return true;
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool waited_ = false;
  std::string output_;
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

}  // namespace kvplan::testing

#endif  // KVPLAN_TESTS_SERVER_COORDINATOR_PROCESS_H_
