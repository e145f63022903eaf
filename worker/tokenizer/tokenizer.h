// Text <-> token ids for the checkpoints kvplan-worker calibrates, without Torch.
//
// One interface, `Tokenizer`, and one factory, `LoadTokenizer`, that picks the
// implementation from what a model directory holds:
//   - `tokenizer.json` (+ `tokenizer_config.json`): the Hugging Face pipeline with
//     a BPE model — byte-level (GPT-2, Llama-3, Qwen) or SentencePiece-style with
//     byte fallback (Llama-2, Mistral);
//   - `tokenizer.bin`: a llama2.c tokenizer (scores, merged greedily by score).
// Encodings match the reference implementations id for id (Hugging Face
// `tokenizers`; llama2.c's `encode`).
//
// Example:
//   absl::StatusOr<std::unique_ptr<Tokenizer>> tok =
//       LoadTokenizer("../shared/models/doc-llama-h64");
//   if (!tok.ok()) return tok.status();
//   absl::StatusOr<std::vector<int32_t>> ids = (*tok)->Encode("Hello, world!", true);
//   // *ids == {0, 41, 1034, 80, 13, 1822, 2}: BOS, then the text.
//   std::string text = (*tok)->Decode(*ids);  // "Hello, world!"
#ifndef KVPLAN_WORKER_TOKENIZER_TOKENIZER_H_
#define KVPLAN_WORKER_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace kvplan {

// A loaded tokenizer. Immutable after loading: every method is const and safe
// to call from any number of threads at once.
class Tokenizer {
 public:
  virtual ~Tokenizer();

  // Token ids of `text`, preceded by the BOS id when `add_bos` is true and the
  // tokenizer has one (`bos_id()`); `add_bos` is the caller's choice alone,
  // `adds_bos_by_default()` says what the model's own pipeline would do.
  // Special tokens written in the text (e.g. "<|end_of_text|>") encode to their
  // ids, as in Hugging Face's default.
  // Errors: InvalidArgument when a tokenizer that needs well-formed UTF-8 (the
  // tokenizer.json ones) gets ill-formed text; the message gives the byte offset.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                                      bool add_bos) const = 0;

  // The text of `ids`. Special tokens (BOS, EOS, added tokens marked special)
  // are left out; ids outside the vocabulary are skipped. Returns the raw bytes
  // the tokens stand for: a span that cuts a multi-byte character yields an
  // incomplete UTF-8 sequence where Hugging Face would print U+FFFD.
  virtual std::string Decode(absl::Span<const int32_t> ids) const = 0;

  // Id of the beginning-of-sequence token, if the tokenizer has one.
  virtual std::optional<int32_t> bos_id() const = 0;
  // Id of the end-of-sequence token, if the tokenizer names one.
  virtual std::optional<int32_t> eos_id() const = 0;
  // One past the largest id, added tokens included: the embedding rows needed.
  virtual int32_t vocab_size() const = 0;
  // Whether the model's own pipeline puts BOS in front of a prompt
  // (`add_bos_token` in tokenizer_config.json, else the post-processor's
  // template; always for llama2.c).
  virtual bool adds_bos_by_default() const = 0;
};

// Loads the tokenizer of `model_dir_or_file`: a directory holding
// `tokenizer.json` (preferred; `tokenizer_config.json` beside it is read too) or
// `tokenizer.bin`, or the path of such a file.
// Errors: NotFound when there is no such path or no tokenizer file in the
// directory; InvalidArgument for malformed files; DataLoss for a truncated
// tokenizer.bin; Unimplemented for a format or pipeline component that is not
// supported (the message names it, e.g. model type "WordPiece").
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::filesystem::path& model_dir_or_file);

}  // namespace kvplan

#endif  // KVPLAN_WORKER_TOKENIZER_TOKENIZER_H_
