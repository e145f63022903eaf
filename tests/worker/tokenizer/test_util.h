// Helpers for the tokenizer tests: shared material and scratch files.
#ifndef KVPLAN_TESTS_WORKER_TOKENIZER_TEST_UTIL_H_
#define KVPLAN_TESTS_WORKER_TOKENIZER_TEST_UTIL_H_

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "tests/common/shared_path.h"

namespace kvplan::tokenizer_test {

// See tests/common/shared_path.h.
inline std::optional<std::filesystem::path> SharedPath(std::string_view relative) {
  return ::kvplan::testing::FindSharedPath(relative);
}

// A fresh, empty directory for the running test.
inline std::filesystem::path MakeTestDir() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    "kvplan_tokenizer" /
                                    (std::string(info->test_suite_name()) + "." + info->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void WriteFile(const std::filesystem::path& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace kvplan::tokenizer_test

#endif  // KVPLAN_TESTS_WORKER_TOKENIZER_TEST_UTIL_H_
