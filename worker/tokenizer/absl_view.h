// std::string_view -> absl::string_view, for Abseil calls.
//
// Debian's Abseil is built with its own absl::string_view rather than an alias
// of std::string_view, and its APIs (StrCat, heterogeneous lookup in
// string-keyed hash maps) accept only that type. `AbslView` bridges the two at
// no cost.
//
// Example:
//   absl::flat_hash_map<std::string, int32_t> ids = ...;
//   auto it = ids.find(AbslView(std::string_view("Ġthe")));  // No string copy.
//   absl::StrCat("word '", AbslView(word), "'");
#ifndef KVPLAN_WORKER_TOKENIZER_ABSL_VIEW_H_
#define KVPLAN_WORKER_TOKENIZER_ABSL_VIEW_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace kvplan::tokenizer_internal {

inline absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_ABSL_VIEW_H_
