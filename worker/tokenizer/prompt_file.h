// Prompt files: JSON Lines, one prompt per line, given either as text to
// tokenize or as token ids already tokenized elsewhere:
//
//   {"id": "p00000", "text": "(Contributed by Victor Stinner in bpo-35059.)"}
//   {"ids": [0, 407, 3601, 3248, 266]}
//
// Exactly one of "text" (a string) and "ids" (a non-empty list of integers in
// [0, 2^31)) per line; other fields are ignored. Blank lines are skipped.
//
// Example:
//   absl::StatusOr<std::vector<Prompt>> prompts =
//       ReadPromptFile("../shared/data/calib-prompts.jsonl");
//   for (const Prompt& p : *prompts) {
//     if (const std::string* text = p.text()) { /* tokenize *text */ }
//   }
#ifndef KVPLAN_WORKER_TOKENIZER_PROMPT_FILE_H_
#define KVPLAN_WORKER_TOKENIZER_PROMPT_FILE_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace kvplan {

// One prompt: text to tokenize, or token ids to use as they are.
struct Prompt {
  std::variant<std::string, std::vector<int32_t>> content;
  // 1-based line of the file it came from, for messages about it later.
  int line = 0;

  // The text, or nullptr for a pre-tokenized prompt.
  const std::string* text() const { return std::get_if<std::string>(&content); }
  // The ids, or nullptr for a text prompt.
  const std::vector<int32_t>* ids() const { return std::get_if<std::vector<int32_t>>(&content); }
};

// Parses JSON Lines `contents`; `source` names it in error messages.
// Errors: InvalidArgument naming the line for malformed JSON, a line that is
// not an object, one with neither or both of "text" and "ids", a non-string
// text, an empty ids list or an id that is not an integer in [0, 2^31);
// InvalidArgument when there is no prompt at all.
absl::StatusOr<std::vector<Prompt>> ParsePrompts(std::string_view contents,
                                                 std::string_view source);

// Reads and parses the prompt file at `path`. Errors: NotFound when it cannot
// be opened; otherwise those of ParsePrompts.
absl::StatusOr<std::vector<Prompt>> ReadPromptFile(const std::filesystem::path& path);

}  // namespace kvplan

#endif  // KVPLAN_WORKER_TOKENIZER_PROMPT_FILE_H_
