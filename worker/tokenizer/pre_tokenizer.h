// The `pre_tokenizer` of a tokenizer.json: cuts a normalized text segment into
// the words that BPE then encodes one at a time (merges never cross words).
// Supported: Sequence, Split (String or Regex pattern; behaviors Isolated,
// Removed, MergedWithPrevious, MergedWithNext, Contiguous; invert), ByteLevel
// (add_prefix_space, use_regex: the GPT-2 pattern), Metaspace (replacement,
// prepend_scheme always/first/never or legacy add_prefix_space, split) and
// Digits.
//
// Example (doc-llama-h64 / Llama-3: Sequence[Split(big regex, Isolated),
// ByteLevel(use_regex=false)]):
//   std::vector<std::string> words = {"it's 2024"};
//   absl::Status s = pre->PreTokenize(&words, /*at_text_start=*/true);
//   // words == {"it", "'s", "Ġ", "202", "4"}  (ByteLevel maps ' ' to 'Ġ')
#ifndef KVPLAN_WORKER_TOKENIZER_PRE_TOKENIZER_H_
#define KVPLAN_WORKER_TOKENIZER_PRE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace kvplan::tokenizer_internal {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces each word of `*words` by its pieces, in order; no piece is empty.
  // `at_text_start` says whether (*words)[0] begins the input text (Metaspace
  // with prepend_scheme "first" prepends only there). Thread-safe.
  // Errors come from regex matching only.
  virtual absl::Status PreTokenize(std::vector<std::string>* words, bool at_text_start) const = 0;
};

// Builds the pre-tokenizer described by `spec`; a JSON null gives nullptr (the
// whole segment is one word). Errors: Unimplemented naming an unsupported type
// or behavior; InvalidArgument for a malformed entry or regex.
absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const nlohmann::json& spec);

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_PRE_TOKENIZER_H_
