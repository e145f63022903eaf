// Runs the real `kvplan` binary as a user would, for the command-line tests.
#ifndef KVPLAN_TESTS_CLIENT_CLI_RUNNER_H_
#define KVPLAN_TESTS_CLIENT_CLI_RUNNER_H_

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace kvplan::testing {

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

inline RunResult RunKvplan(const std::string& args) {
  const std::string command = std::string(KVPLAN_BINARY_DIR) + "/bin/kvplan " + args + " 2>&1";
  RunResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.out.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// A scratch directory removed when the object goes away.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }

  std::string Write(const std::string& name, const std::string& contents) const {
    const std::filesystem::path file = path_ / name;
    std::ofstream(file) << contents;
    return file.string();
  }
  std::string Path(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline std::string SharedPath(const std::string& relative) {
  return std::string(KVPLAN_SHARED_DIR) + "/" + relative;
}

}  // namespace kvplan::testing

#endif  // KVPLAN_TESTS_CLIENT_CLI_RUNNER_H_
