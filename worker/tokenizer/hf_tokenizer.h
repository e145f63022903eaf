// A Tokenizer for Hugging Face `tokenizer.json` files with a BPE model: the
// `tokenizers` pipeline of added-token split, normalizer, pre-tokenizer, BPE
// and decoder, each built from its JSON. The same pipeline serves byte-level
// BPE (GPT-2, Llama-3, Qwen: Split regex + ByteLevel) and SentencePiece-style
// BPE with byte fallback (Llama-2, Mistral: Prepend/Replace normalizer or
// Metaspace, `<0xXX>` tokens).
//
// BOS: `bos_token` and `add_bos_token` of tokenizer_config.json when given,
// else the special token that the `post_processor` template puts first.
// EOS: `eos_token` of tokenizer_config.json. `clean_up_tokenization_spaces`
// there is applied by Decode as `transformers` does. The file's `truncation`
// and `padding` settings are ignored: sequence lengths are the caller's call.
//
// Example:
//   absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadHfTokenizer(
//       dir / "tokenizer.json", dir / "tokenizer_config.json");
#ifndef KVPLAN_WORKER_TOKENIZER_HF_TOKENIZER_H_
#define KVPLAN_WORKER_TOKENIZER_HF_TOKENIZER_H_

#include <filesystem>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan::tokenizer_internal {

// Loads `tokenizer_json`, and `tokenizer_config_json` when given (a missing
// config file is an error; pass nullopt when there is none). Errors as
// LoadTokenizer's.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(
    const std::filesystem::path& tokenizer_json,
    const std::optional<std::filesystem::path>& tokenizer_config_json);

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_HF_TOKENIZER_H_
