#include "worker/tokenizer/hf_pattern.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer/absl_view.h"

namespace kvplan::tokenizer_internal {

absl::StatusOr<Regex> PatternFromJson(const nlohmann::json& pattern, std::string_view owner) {
  if (pattern.is_object() && pattern.size() == 1) {
    auto literal = pattern.find("String");
    if (literal != pattern.end() && literal->is_string()) {
      return Regex::Compile(literal->get_ref<const std::string&>(), /*literal=*/true);
    }
    auto regex = pattern.find("Regex");
    if (regex != pattern.end() && regex->is_string()) {
      return Regex::Compile(regex->get_ref<const std::string&>());
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(AbslView(owner),
                                                 " pattern must be {\"String\": ...} or ",
                                                 "{\"Regex\": ...}, not ", pattern.dump()));
}

absl::Status ReplaceAll(const Regex& regex, std::string_view content, std::string* text) {
  std::vector<Regex::Match> matches;
  if (absl::Status s = regex.FindAll(*text, &matches); !s.ok()) return s;
  if (matches.empty()) return absl::OkStatus();
  std::string out;
  out.reserve(text->size());
  size_t last = 0;
  for (const Regex::Match& m : matches) {
    out.append(*text, last, m.begin - last);
    out.append(content);
    last = m.end;
  }
  out.append(*text, last);
  *text = std::move(out);
  return absl::OkStatus();
}

}  // namespace kvplan::tokenizer_internal
