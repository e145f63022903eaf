// The `decoder` of a tokenizer.json: turns the tokens of an id sequence back
// into text. Like `tokenizers`, each step rewrites the list of token strings
// and the result is their concatenation.
// Supported: Sequence, ByteLevel, Metaspace, Replace (String pattern),
// ByteFallback, Fuse, Strip. ByteLevel and ByteFallback yield raw bytes where
// `tokenizers` would substitute U+FFFD for an incomplete UTF-8 sequence.
//
// Example (Llama-2: Sequence[Replace "▁"->" ", ByteFallback, Fuse, Strip(" ", 1, 0)]):
//   std::vector<std::string> t = {"▁Hello", "▁", "<0xE2>", "<0x80>", "<0x93>"};
//   decoder->DecodeChain(&t);  // t == {"Hello –"}
#ifndef KVPLAN_WORKER_TOKENIZER_DECODER_H_
#define KVPLAN_WORKER_TOKENIZER_DECODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace kvplan::tokenizer_internal {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings in `*tokens`. Thread-safe.
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

// Builds the decoder described by `spec`; a JSON null gives nullptr (tokens
// are joined with spaces, as `tokenizers` does). Errors: Unimplemented naming
// an unsupported type; InvalidArgument for a malformed entry.
absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const nlohmann::json& spec);

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_DECODER_H_
