// The tokenizer of llama2.c (`tokenizer.bin`, e.g. stories260K's tok512.bin),
// encoding exactly as llama2.c's `encode()`: BOS (id 1) if asked, a dummy
// prefix " " for non-empty text, each UTF-8 character looked up whole or else
// spelled as byte tokens (byte b is id b + 3), then, repeatedly, the adjacent
// pair whose concatenation is a vocabulary token with the highest score is
// merged (leftmost on ties; BOS takes no part). Decoding drops BOS/EOS,
// removes the leading space of the piece right after BOS, and turns "<0xXX>"
// pieces into raw bytes.
//
// Example (stories260K):
//   absl::StatusOr<std::unique_ptr<Tokenizer>> tok =
//       LoadLlama2cTokenizer("../shared/models/stories260K/hf/tokenizer.bin");
//   (*tok)->Encode("Once upon a time", true);  // {1, 403, 407, 261, 378}
#ifndef KVPLAN_WORKER_TOKENIZER_LLAMA2C_TOKENIZER_H_
#define KVPLAN_WORKER_TOKENIZER_LLAMA2C_TOKENIZER_H_

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan::tokenizer_internal {

// Loads a llama2.c tokenizer.bin; the vocabulary size is the number of
// records in the file. Errors: NotFound for a missing file; DataLoss naming the
// record for a truncated or corrupt file.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLlama2cTokenizer(
    const std::filesystem::path& tokenizer_bin);

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_LLAMA2C_TOKENIZER_H_
