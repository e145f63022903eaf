// Where tests find the shared material (models, reference outputs, data).
#ifndef KVPLAN_TESTS_COMMON_SHARED_PATH_H_
#define KVPLAN_TESTS_COMMON_SHARED_PATH_H_

#include <filesystem>
#include <optional>
#include <string_view>

namespace kvplan::testing {

// `relative` under shared/: ../shared from the project root (where ctest runs
// the tests), else the KVPLAN_SHARED_DIR the build was configured with;
// nullopt when neither exists (the caller skips with a message).
inline std::optional<std::filesystem::path> FindSharedPath(std::string_view relative) {
  std::error_code error;
  const std::filesystem::path local = std::filesystem::path("../shared") / relative;
  if (std::filesystem::exists(local, error)) return local;
#ifdef KVPLAN_SHARED_DIR
  const std::filesystem::path configured = std::filesystem::path(KVPLAN_SHARED_DIR) / relative;
  if (std::filesystem::exists(configured, error)) return configured;
#endif
  return std::nullopt;
}

}  // namespace kvplan::testing

#endif  // KVPLAN_TESTS_COMMON_SHARED_PATH_H_
