// The `normalizer` of a tokenizer.json: text rewrites applied to each plain-text
// segment before pre-tokenization. Supported: Sequence, Prepend, Replace
// (String or Regex pattern), Strip — what SentencePiece-style BPE tokenizers
// (Llama-2, Mistral) use. Unicode normal forms (NFC, NFKC, ...) would need ICU
// and are refused at load time.
//
// Example (Llama-2: Sequence[Prepend "▁", Replace " " -> "▁"]):
//   std::string s = "Hello world";
//   absl::Status st = normalizer->Normalize(&s);  // s == "▁Hello▁world"
#ifndef KVPLAN_WORKER_TOKENIZER_NORMALIZER_H_
#define KVPLAN_WORKER_TOKENIZER_NORMALIZER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace kvplan::tokenizer_internal {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `*text` in place. Thread-safe. Errors come from regex matching only.
  virtual absl::Status Normalize(std::string* text) const = 0;
};

// Builds the normalizer described by `spec`; a JSON null gives nullptr (no
// normalization). Errors: Unimplemented naming an unsupported type;
// InvalidArgument for a malformed entry.
absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const nlohmann::json& spec);

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_NORMALIZER_H_
