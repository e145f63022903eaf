#include "worker/tokenizer/json_file.h"

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace kvplan::tokenizer_internal {

absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::DataLossError(absl::StrCat("error while reading ", path.string()));
  return contents;
}

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::filesystem::path& path) {
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  if (!contents.ok()) return contents.status();
  // The parser reports errors by exception; they stop here.
  try {
    return nlohmann::json::parse(*contents);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is not valid JSON: ", e.what()));
  }
}

}  // namespace kvplan::tokenizer_internal
