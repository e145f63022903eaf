// Reads a JSON document from disk into nlohmann::json with a Status instead of
// an exception, so the tokenizer loaders can say which file was bad and where.
//
// Example:
//   absl::StatusOr<nlohmann::json> j = ReadJsonFile(dir / "tokenizer.json");
//   // Missing file: NotFound "cannot open .../tokenizer.json".
//   // Broken JSON: InvalidArgument ".../tokenizer.json is not valid JSON: ... byte 1234".
#ifndef KVPLAN_WORKER_TOKENIZER_JSON_FILE_H_
#define KVPLAN_WORKER_TOKENIZER_JSON_FILE_H_

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kvplan::tokenizer_internal {

// Reads the whole of `path`. Errors: NotFound when it cannot be opened,
// DataLoss when reading fails midway.
absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path);

// Reads and parses `path`. Errors: those of ReadFileToString; InvalidArgument
// with the parser's reason and byte position for malformed JSON.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::filesystem::path& path);

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_JSON_FILE_H_
