#include "worker/tokenizer/prompt_file.h"

#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer/absl_view.h"
#include "worker/tokenizer/json_file.h"

namespace kvplan {
namespace {

using tokenizer_internal::AbslView;

absl::Status LineError(std::string_view source, int line, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(AbslView(source), ":", line, ": ", AbslView(what)));
}

absl::StatusOr<Prompt> ParseLine(std::string_view source, int line_number, std::string_view line) {
  nlohmann::json value = nlohmann::json::parse(line, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return LineError(source, line_number, "malformed JSON");
  if (!value.is_object()) return LineError(source, line_number, "expected a JSON object");
  auto text = value.find("text");
  auto ids = value.find("ids");
  const bool has_text = text != value.end();
  const bool has_ids = ids != value.end();
  if (has_text == has_ids) {
    return LineError(
        source, line_number,
        has_text ? "has both \"text\" and \"ids\"; give one" : "has neither \"text\" nor \"ids\"");
  }
  Prompt prompt;
  prompt.line = line_number;
  if (has_text) {
    if (!text->is_string()) return LineError(source, line_number, "\"text\" is not a string");
    prompt.content = text->get<std::string>();
    return prompt;
  }
  if (!ids->is_array() || ids->empty()) {
    return LineError(source, line_number, "\"ids\" is not a non-empty list");
  }
  std::vector<int32_t> tokens;
  tokens.reserve(ids->size());
  for (size_t i = 0; i < ids->size(); ++i) {
    const nlohmann::json& id = (*ids)[i];
    const bool in_range = id.is_number_integer() && id.get<int64_t>() >= 0 &&
                          id.get<int64_t>() <= std::numeric_limits<int32_t>::max();
    if (!in_range) {
      return LineError(
          source, line_number,
          absl::StrCat("\"ids\"[", i, "] = ", id.dump(), " is not an integer in [0, 2^31)"));
    }
    tokens.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  prompt.content = std::move(tokens);
  return prompt;
}

}  // namespace

absl::StatusOr<std::vector<Prompt>> ParsePrompts(std::string_view contents,
                                                 std::string_view source) {
  std::vector<Prompt> prompts;
  int line_number = 0;
  size_t pos = 0;
  while (pos < contents.size()) {
    size_t end = contents.find('\n', pos);
    if (end == std::string_view::npos) end = contents.size();
    std::string_view line = contents.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (absl::StripAsciiWhitespace(AbslView(line)).empty()) continue;
    absl::StatusOr<Prompt> prompt = ParseLine(source, line_number, line);
    if (!prompt.ok()) return prompt.status();
    prompts.push_back(*std::move(prompt));
  }
  if (prompts.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(source), ": no prompts (the file is empty)"));
  }
  return prompts;
}

absl::StatusOr<std::vector<Prompt>> ReadPromptFile(const std::filesystem::path& path) {
  absl::StatusOr<std::string> contents = tokenizer_internal::ReadFileToString(path);
  if (!contents.ok()) return contents.status();
  return ParsePrompts(*contents, path.string());
}

}  // namespace kvplan
