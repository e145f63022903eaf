// Whole-file reads and crash-safe whole-file writes.
//
// Example:
//   absl::StatusOr<std::string> bytes = ReadFile("stats.kvps");
//   absl::Status st = WriteFileAtomically("plan.json", text);  // temp + fsync + rename
#ifndef KVPLAN_CORE_FILE_IO_H_
#define KVPLAN_CORE_FILE_IO_H_

#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kvplan {

// Reads all of `path`. NotFound / PermissionDenied / Internal name the path.
// Refuses files larger than `max_bytes` (a typo pointing at a model shard should
// not load gigabytes into a string).
absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path,
                                     size_t max_bytes = size_t{1} << 30);

// Writes `contents` to `path` so that readers see the old file or the new one,
// never a torn one, even across a crash: write a sibling temp file, fsync it,
// rename over `path`, fsync the directory.
absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents);

}  // namespace kvplan

#endif  // KVPLAN_CORE_FILE_IO_H_
