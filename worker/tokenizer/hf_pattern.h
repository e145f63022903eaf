// The `pattern` field that Hugging Face Split, Replace normalizer and Replace
// decoder share: {"String": "literal"} or {"Regex": "..."}, compiled to one
// Regex either way.
//
// Example:
//   absl::StatusOr<Regex> re = PatternFromJson(json{{"String", " "}}, "Replace");
#ifndef KVPLAN_WORKER_TOKENIZER_HF_PATTERN_H_
#define KVPLAN_WORKER_TOKENIZER_HF_PATTERN_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"
#include "worker/tokenizer/regex.h"

namespace kvplan::tokenizer_internal {

// Compiles `pattern`; `owner` names the component in error messages.
// Errors: InvalidArgument for a malformed pattern object or a bad regex.
absl::StatusOr<Regex> PatternFromJson(const nlohmann::json& pattern, std::string_view owner);

// Replaces every match of `regex` in `*text` by `content`. Errors: those of
// Regex::FindAll.
absl::Status ReplaceAll(const Regex& regex, std::string_view content, std::string* text);

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_HF_PATTERN_H_
