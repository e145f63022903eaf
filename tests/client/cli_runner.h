// Runs the real `kvplan` binary as a user would, for the command-line tests.
#ifndef KVPLAN_TESTS_CLIENT_CLI_RUNNER_H_
#define KVPLAN_TESTS_CLIENT_CLI_RUNNER_H_

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/common/child_process.h"

namespace kvplan::testing {

inline RunResult RunKvplan(const std::string& args) {
  return RunShell(BinaryPath("kvplan") + " " + args);
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
