// A child process for tests that run the project's real binaries: any binary
// of the build, its stdout and stderr read through a pipe, waited for with a
// timeout, killed with any signal. (tests/server/coordinator_process.h builds
// the coordinator's wrapper on it.)
//
// Example:
//   ChildProcess w(BinaryPath("kvplan-worker"), {"serve", "--coordinator", addr, "--once"});
//   ASSERT_TRUE(w.WaitForOutput("leased job", std::chrono::seconds(30)));
//   w.Kill(SIGKILL);
#ifndef KVPLAN_TESTS_COMMON_CHILD_PROCESS_H_
#define KVPLAN_TESTS_COMMON_CHILD_PROCESS_H_

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace kvplan::testing {

inline std::string BinaryPath(const std::string& name) {
  return std::string(KVPLAN_BINARY_DIR) + "/bin/" + name;
}

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

// Runs `command` through the shell to completion: its exit code and its
// stdout and stderr together (exit_code -1 when it could not start or did not
// exit normally).
inline RunResult RunShell(const std::string& command) {
  RunResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.out.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

class ChildProcess {
 public:
  ChildProcess(const std::string& binary, std::vector<std::string> args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
      close(fds[0]);
      args.insert(args.begin(), binary);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_fd_ = fds[0];
  }
  ~ChildProcess() {
    if (pid_ > 0 && !exit_code_) Kill(SIGKILL);
    if (out_fd_ >= 0) close(out_fd_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Everything printed so far.
  const std::string& output() {
    ReadSome(0);
    return output_;
  }
  // Whether `text` appeared in the output within `timeout`.
  bool WaitForOutput(const std::string& text, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (output_.find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      ReadSome(50);
    }
    return true;
  }
  // The exit code (128 + signal if killed), or nullopt if still running after `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!exit_code_) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      } else if (r < 0 || std::chrono::steady_clock::now() >= deadline) {
        break;
      } else {
        ReadSome(50);
      }
    }
    ReadSome(0);
    return exit_code_;
  }
  int Kill(int signal) {
    if (exit_code_) return *exit_code_;  // Already reaped: nothing to signal.
    kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ReadSome(0);
    return *exit_code_;
  }

 private:
  void ReadSome(int timeout_ms) {
    pollfd p{.fd = out_fd_, .events = POLLIN, .revents = 0};
    while (out_fd_ >= 0 && poll(&p, 1, timeout_ms) > 0) {
      char buffer[4096];
      const ssize_t n = read(out_fd_, buffer, sizeof(buffer));
      if (n <= 0) break;
      output_.append(buffer, static_cast<size_t>(n));
      timeout_ms = 0;
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::optional<int> exit_code_;
  std::string output_;
};

}  // namespace kvplan::testing

#endif  // KVPLAN_TESTS_COMMON_CHILD_PROCESS_H_
