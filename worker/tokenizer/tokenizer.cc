#include "worker/tokenizer/tokenizer.h"

#include <system_error>

#include "absl/strings/str_cat.h"
#include "worker/tokenizer/hf_tokenizer.h"
#include "worker/tokenizer/llama2c_tokenizer.h"

namespace kvplan {

Tokenizer::~Tokenizer() = default;

namespace {

namespace fs = std::filesystem;

bool IsRegularFile(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfWithConfig(const fs::path& tokenizer_json) {
  const fs::path config = tokenizer_json.parent_path() / "tokenizer_config.json";
  return tokenizer_internal::LoadHfTokenizer(
      tokenizer_json, IsRegularFile(config) ? std::optional<fs::path>(config) : std::nullopt);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const fs::path& model_dir_or_file) {
  std::error_code error;
  const fs::file_status status = fs::status(model_dir_or_file, error);
  if (error || !fs::exists(status)) {
    return absl::NotFoundError(absl::StrCat("no tokenizer at ", model_dir_or_file.string(),
                                            ": no such file or directory"));
  }
  if (fs::is_directory(status)) {
    const fs::path json = model_dir_or_file / "tokenizer.json";
    if (IsRegularFile(json)) return LoadHfWithConfig(json);
    const fs::path bin = model_dir_or_file / "tokenizer.bin";
    if (IsRegularFile(bin)) return tokenizer_internal::LoadLlama2cTokenizer(bin);
    if (IsRegularFile(model_dir_or_file / "tokenizer.model")) {
      return absl::UnimplementedError(absl::StrCat(
          model_dir_or_file.string(), " has only tokenizer.model (a SentencePiece protobuf), ",
          "which is not supported: export tokenizer.json with Hugging Face transformers"));
    }
    return absl::NotFoundError(
        absl::StrCat(model_dir_or_file.string(), " has neither tokenizer.json nor tokenizer.bin"));
  }
  const fs::path extension = model_dir_or_file.extension();
  if (extension == ".json") return LoadHfWithConfig(model_dir_or_file);
  if (extension == ".bin") return tokenizer_internal::LoadLlama2cTokenizer(model_dir_or_file);
  return absl::InvalidArgumentError(
      absl::StrCat("cannot tell the tokenizer format of ", model_dir_or_file.string(),
                   " from its name: expected a .json (Hugging Face) or .bin (llama2.c) file"));
}

}  // namespace kvplan
